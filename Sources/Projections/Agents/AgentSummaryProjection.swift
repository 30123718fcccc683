import Events
import Foundation

/// A small hash per agent in Redis (`agent:<id>`), for fast single-agent reads. A deleted agent's
/// hash stays an hour, then expires.
public struct AgentSummaryProjection: RedisProjection {
    public let name = "agent_summary"
    let registry: EventRegistry
    public static let deletedRetentionSeconds = 3600

    public init(registry: EventRegistry = AgentEvent.registry) {
        self.registry = registry
    }

    public func writes(for event: RecordedEvent) throws -> [RedisWrite] {
        guard event.streamID.hasPrefix("agent-"), registry.registrations[event.eventType] != nil else { return [] }
        switch try registry.decode(event, as: AgentEvent.self) {
        case .created(let created):
            let key = Self.key(created.agentID)
            return [
                .hashSet(key: key, fields: [
                    "name": created.name, "owner_id": created.ownerID, "model": created.settings.model,
                    "status": "active", "version": String(event.streamVersion),
                    "instructions": created.instructions,
                ]),
                .setAdd(key: "owner:\(created.ownerID)", members: [created.agentID.uuidString.lowercased()]),
            ]
        case .instructionsChanged(let changed):
            return [.hashSet(key: Self.key(changed.agentID), fields: ["instructions": changed.instructions, "version": String(event.streamVersion)])]
        case .renamed(let renamed):
            return [.hashSet(key: Self.key(renamed.agentID), fields: ["name": renamed.name, "version": String(event.streamVersion)])]
        case .modelSettingsChanged(let changed):
            return [.hashSet(key: Self.key(changed.agentID), fields: ["model": changed.settings.model, "version": String(event.streamVersion)])]
        case .pluginAdded(let added):
            return [.hashSet(key: Self.key(added.agentID), fields: ["version": String(event.streamVersion)])]
        case .pluginRemoved(let removed):
            return [.hashSet(key: Self.key(removed.agentID), fields: ["version": String(event.streamVersion)])]
        case .personaSet(let set):
            return [.hashSet(key: Self.key(set.agentID), fields: ["version": String(event.streamVersion)])]
        case .deleted(let deleted):
            return [
                .hashSet(key: Self.key(deleted.agentID), fields: ["status": "deleted", "version": String(event.streamVersion)]),
                .expire(key: Self.key(deleted.agentID), seconds: Self.deletedRetentionSeconds),
            ]
        }
    }

    public static func key(_ agentID: UUID) -> String { "agent:\(agentID.uuidString.lowercased())" }
}
