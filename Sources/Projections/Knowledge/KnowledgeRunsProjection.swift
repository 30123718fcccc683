import Commands
import Events
import Foundation

/// Indexing runs (Postgres, `knowledge_runs`): what the run watchdog reads its candidates from
/// (runs still `running`), and a base's indexing history. The runs' streams decide; this only
/// says where to look.
public struct KnowledgeRunsProjection: PostgresProjection {
    public let name = "knowledge_runs"
    let registry: EventRegistry

    public init(registry: EventRegistry = KnowledgeIndexingEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [
            ReadModelTable(name: "knowledge_runs", ddl: """
                CREATE TABLE IF NOT EXISTS {knowledge_runs} (
                    run_id            uuid PRIMARY KEY,
                    knowledge_base_id uuid NOT NULL,
                    document_id       uuid NOT NULL,
                    version           integer NOT NULL,
                    status            text NOT NULL,
                    done              integer,
                    total             integer,
                    chunks            integer,
                    reason            text,
                    started_at        timestamptz NOT NULL,
                    updated_at        timestamptz NOT NULL
                );
                CREATE INDEX IF NOT EXISTS {knowledge_runs}_status_idx ON {knowledge_runs} (status, started_at);
                CREATE INDEX IF NOT EXISTS {knowledge_runs}_document_idx ON {knowledge_runs} (document_id, started_at)
                """)
        ]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("\(KnowledgeIndexingDecider.category)-"), registry.registrations[event.eventType] != nil,
            let run = KnowledgeIndexingEvent(payload: try registry.decode(event))
        else { return [] }
        switch run {
        case .started(let started):
            return [SQLStatement("""
                INSERT INTO {knowledge_runs} (run_id, knowledge_base_id, document_id, version, status, started_at, updated_at)
                VALUES ($1, $2, $3, $4, 'running', $5, $5) ON CONFLICT (run_id) DO NOTHING
                """, [.uuid(started.runID), .uuid(started.knowledgeBaseID), .uuid(started.documentID), .int(Int64(started.version)),
                      .timestamp(started.startedAt)])]
        case .progressed(let progressed):
            return [SQLStatement(
                "UPDATE {knowledge_runs} SET done = $2, total = $3, updated_at = $4 WHERE run_id = $1",
                [.uuid(progressed.runID), .int(Int64(progressed.done)), .int(Int64(progressed.total)), .timestamp(progressed.progressedAt)])]
        case .completed(let completed):
            return [SQLStatement(
                "UPDATE {knowledge_runs} SET status = 'completed', chunks = $2, done = $2, total = $2, updated_at = $3 WHERE run_id = $1",
                [.uuid(completed.runID), .int(Int64(completed.chunks)), .timestamp(completed.completedAt)])]
        case .failed(let failed):
            return [Self.end(failed.runID, "failed", failed.reason, failed.failedAt)]
        case .cancelled(let cancelled):
            return [Self.end(cancelled.runID, "cancelled", cancelled.reason, cancelled.cancelledAt)]
        case .timedOut(let timedOut):
            return [Self.end(timedOut.runID, "timed_out", timedOut.reason, timedOut.timedOutAt)]
        }
    }

    static func end(_ run: UUID, _ status: String, _ reason: String, _ at: Date) -> SQLStatement {
        SQLStatement(
            "UPDATE {knowledge_runs} SET status = $2, reason = $3, updated_at = $4 WHERE run_id = $1",
            [.uuid(run), .text(status), .text(reason), .timestamp(at)])
    }
}

/// What the Knowledge module reads from `knowledge_runs`.
public protocol KnowledgeRunQueries: Sendable {
    /// Runs still `running` that started before `date`: candidates for the watchdog.
    func unfinishedRuns(startedBefore date: Date, limit: Int) async throws -> [UUID]
}
