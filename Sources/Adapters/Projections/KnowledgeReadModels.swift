import Foundation
import Logging
import PostgresNIO
import Projections

/// `KnowledgeRunQueries` over `knowledge_runs` (read through its view, so a rebuild's swap is
/// invisible).
public struct KnowledgeReadModels: KnowledgeRunQueries {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func unfinishedRuns(startedBefore date: Date, limit: Int) async throws -> [UUID] {
        try await readModel(orIfAbsent: []) {
            let rows = try await client.query(
                "SELECT run_id FROM knowledge_runs WHERE status = 'running' AND started_at < \(date) ORDER BY started_at LIMIT \(limit)", logger: logger)
            var found: [UUID] = []
            for try await id in rows.decode(UUID.self) { found.append(id) }
            return found
        }
    }
}
