import Events
import Foundation

/// Agents per owner, for `GET /agents` and `GET /agents/{id}` (Postgres, table
/// `agents_by_owner`): every field of the agent, its stream version (the ETag) and status. Folded
/// per batch (`foldChange`); `statements(for:)` says the same one event at a time.
public struct AgentListProjection: FoldingPostgresProjection {
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

    public var foldTable: FoldTable {
        FoldTable(name: "agents_by_owner", columns: [
            ("agent_id", .uuid), ("owner_id", .text), ("tenant_id", .text), ("name", .text), ("instructions", .text), ("model", .text),
            ("temperature", .double), ("max_tokens", .bigint), ("plugins", .jsonb), ("status", .text), ("persona", .jsonb),
            ("version", .bigint), ("created_at", .timestamptz), ("updated_at", .timestamptz),
        ])
    }

    /// The statements above, as changes to the row: an insert that does nothing over an existing
    /// row, updates that do nothing without one.
    public func foldChange(for event: RecordedEvent) throws -> FoldChange? {
        guard event.streamID.hasPrefix("agent-"), registry.registrations[event.eventType] != nil else { return nil }
        let version = SQLValue.int(event.streamVersion)
        func update(_ id: UUID, _ at: Date, _ change: @escaping @Sendable (inout FoldRow) -> Void) -> FoldChange {
            FoldChange(key: .uuid(id)) { row in
                guard row != nil else { return }
                change(&row!)
                row!["version"] = version
                row!["updated_at"] = .timestamp(at)
            }
        }
        switch try registry.decode(event, as: AgentEvent.self) {
        case .created(let created):
            let plugins = SQLValue.json(try JSONEncoder().encode(created.plugins))
            let tenant = event.metadata.tenantID.map(SQLValue.text) ?? .null
            return FoldChange(key: .uuid(created.agentID)) { row in
                guard row == nil else { return }
                row = [
                    "agent_id": .uuid(created.agentID), "owner_id": .text(created.ownerID), "tenant_id": tenant, "name": .text(created.name),
                    "instructions": .text(created.instructions), "model": .text(created.settings.model),
                    "temperature": .double(created.settings.temperature), "max_tokens": .int(Int64(created.settings.maxTokens)),
                    "plugins": plugins, "status": .text("active"), "persona": .null, "version": version,
                    "created_at": .timestamp(created.createdAt), "updated_at": .timestamp(created.createdAt),
                ]
            }
        case .instructionsChanged(let changed):
            return update(changed.agentID, changed.changedAt) { $0["instructions"] = .text(changed.instructions) }
        case .renamed(let renamed):
            return update(renamed.agentID, renamed.renamedAt) { $0["name"] = .text(renamed.name) }
        case .modelSettingsChanged(let changed):
            return update(changed.agentID, changed.changedAt) {
                $0["model"] = .text(changed.settings.model)
                $0["temperature"] = .double(changed.settings.temperature)
                $0["max_tokens"] = .int(Int64(changed.settings.maxTokens))
            }
        case .pluginAdded(let added):
            return update(added.agentID, added.addedAt) { row in
                var plugins = Self.plugins(row["plugins"])
                if !plugins.contains(added.plugin) { plugins.append(added.plugin) }
                row["plugins"] = .json((try? JSONEncoder().encode(plugins)) ?? Data("[]".utf8))
            }
        case .pluginRemoved(let removed):
            return update(removed.agentID, removed.removedAt) { row in
                let plugins = Self.plugins(row["plugins"]).filter { $0 != removed.plugin }
                row["plugins"] = .json((try? JSONEncoder().encode(plugins)) ?? Data("[]".utf8))
            }
        case .deleted(let deleted):
            return update(deleted.agentID, deleted.deletedAt) { $0["status"] = .text("deleted") }
        case .personaSet(let set):
            let persona = set.persona.map { SQLValue.json((try? EventCoding.encode($0)) ?? Data("null".utf8)) } ?? .null
            return update(set.agentID, set.setAt) { $0["persona"] = persona }
        }
    }

    static func plugins(_ value: SQLValue?) -> [String] {
        guard case .json(let data) = value else { return [] }
        return (try? JSONDecoder().decode([String].self, from: data)) ?? []
    }

    func update(_ agentID: UUID, _ assignments: String, _ binds: [SQLValue], _ version: SQLValue, _ at: Date) -> SQLStatement {
        SQLStatement(
            "UPDATE {agents_by_owner} SET \(assignments), version = $2, updated_at = $3 WHERE agent_id = $1",
            [.uuid(agentID), version, .timestamp(at)] + binds)
    }
}
