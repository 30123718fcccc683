import Events
import Foundation

/// Agents per owner, for `GET /agents` (Postgres, table `agents_by_owner`).
public struct AgentListProjection: PostgresProjection {
    public let name = "agents_by_owner"
    let registry: EventRegistry

    public init(registry: EventRegistry = .chronicle) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "agents_by_owner", ddl: """
            CREATE TABLE IF NOT EXISTS {agents_by_owner} (
                agent_id    uuid PRIMARY KEY,
                owner_id    text NOT NULL,
                name        text NOT NULL,
                model       text NOT NULL,
                status      text NOT NULL,
                version     bigint NOT NULL,
                created_at  timestamptz NOT NULL,
                updated_at  timestamptz NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {agents_by_owner}_owner_idx ON {agents_by_owner} (owner_id, created_at, agent_id)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("agent-"), registry.registrations[event.eventType] != nil else { return [] }
        switch try registry.decode(event, as: AgentEvent.self) {
        case .created(let created):
            return [SQLStatement("""
                INSERT INTO {agents_by_owner} (agent_id, owner_id, name, model, status, version, created_at, updated_at)
                VALUES ($1, $2, $3, $4, 'active', $5, $6, $6) ON CONFLICT (agent_id) DO NOTHING
                """, [.uuid(created.agentID), .text(created.ownerID), .text(created.name), .text(created.settings.model),
                      .int(event.streamVersion), .timestamp(created.createdAt)])]
        case .instructionsChanged(let changed):
            return [SQLStatement(
                "UPDATE {agents_by_owner} SET version = $2, updated_at = $3 WHERE agent_id = $1",
                [.uuid(changed.agentID), .int(event.streamVersion), .timestamp(changed.changedAt)])]
        case .deleted(let deleted):
            return [SQLStatement(
                "UPDATE {agents_by_owner} SET status = 'deleted', version = $2, updated_at = $3 WHERE agent_id = $1",
                [.uuid(deleted.agentID), .int(event.streamVersion), .timestamp(deleted.deletedAt)])]
        }
    }
}
