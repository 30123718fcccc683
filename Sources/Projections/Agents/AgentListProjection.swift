import Events
import Foundation

/// Agents per owner, for `GET /agents` and `GET /agents/{id}` (Postgres, table
/// `agents_by_owner`): every field of the agent, its stream version (the ETag) and status.
public struct AgentListProjection: PostgresProjection {
    public let name = "agents_by_owner"
    let registry: EventRegistry

    public init(registry: EventRegistry = AgentEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [ReadModelTable(name: "agents_by_owner", ddl: """
            CREATE TABLE IF NOT EXISTS {agents_by_owner} (
                agent_id     uuid PRIMARY KEY,
                owner_id     text NOT NULL,
                tenant_id    text,
                name         text NOT NULL,
                instructions text NOT NULL,
                model        text NOT NULL,
                temperature  double precision NOT NULL,
                max_tokens   bigint NOT NULL,
                plugins      jsonb NOT NULL,
                status       text NOT NULL,
                persona      jsonb,
                version      bigint NOT NULL,
                created_at   timestamptz NOT NULL,
                updated_at   timestamptz NOT NULL
            );
            CREATE INDEX IF NOT EXISTS {agents_by_owner}_owner_idx ON {agents_by_owner} (owner_id, created_at, agent_id)
            """)]
    }

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix("agent-"), registry.registrations[event.eventType] != nil else { return [] }
        let version = SQLValue.int(event.streamVersion)
        switch try registry.decode(event, as: AgentEvent.self) {
        case .created(let created):
            return [SQLStatement("""
                INSERT INTO {agents_by_owner} (agent_id, owner_id, name, instructions, model, temperature, max_tokens, plugins,
                                               status, version, created_at, updated_at, tenant_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, 'active', $9, $10, $10, $11) ON CONFLICT (agent_id) DO NOTHING
                """, [.uuid(created.agentID), .text(created.ownerID), .text(created.name), .text(created.instructions),
                      .text(created.settings.model), .double(created.settings.temperature), .int(Int64(created.settings.maxTokens)),
                      .json(try JSONEncoder().encode(created.plugins)), version, .timestamp(created.createdAt),
                      event.metadata.tenantID.map(SQLValue.text) ?? .null])]
        case .instructionsChanged(let changed):
            return [update(changed.agentID, "instructions = $4", [.text(changed.instructions)], version, changed.changedAt)]
        case .renamed(let renamed):
            return [update(renamed.agentID, "name = $4", [.text(renamed.name)], version, renamed.renamedAt)]
        case .modelSettingsChanged(let changed):
            return [update(
                changed.agentID, "model = $4, temperature = $5, max_tokens = $6",
                [.text(changed.settings.model), .double(changed.settings.temperature), .int(Int64(changed.settings.maxTokens))],
                version, changed.changedAt)]
        case .pluginAdded(let added):
            return [update(
                added.agentID, "plugins = CASE WHEN plugins ? $4 THEN plugins ELSE plugins || jsonb_build_array($4::text) END",
                [.text(added.plugin)], version, added.addedAt)]
        case .pluginRemoved(let removed):
            return [update(removed.agentID, "plugins = plugins - $4::text", [.text(removed.plugin)], version, removed.removedAt)]
        case .deleted(let deleted):
            return [update(deleted.agentID, "status = 'deleted'", [], version, deleted.deletedAt)]
        case .personaSet(let set):
            return [update(
                set.agentID, "persona = $4::jsonb", [set.persona.map { .json((try? EventCoding.encode($0)) ?? Data("null".utf8)) } ?? .null], version,
                set.setAt)]
        }
    }

    func update(_ agentID: UUID, _ assignments: String, _ binds: [SQLValue], _ version: SQLValue, _ at: Date) -> SQLStatement {
        SQLStatement(
            "UPDATE {agents_by_owner} SET \(assignments), version = $2, updated_at = $3 WHERE agent_id = $1",
            [.uuid(agentID), version, .timestamp(at)] + binds)
    }
}
