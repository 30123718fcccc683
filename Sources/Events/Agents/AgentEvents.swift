import Foundation

/// Settings that choose and tune the model an agent runs on.
public struct AgentModelSettings: Codable, Sendable, Equatable {
    public var model: String
    /// 0 to 2.
    public var temperature: Double
    /// Greater than 0.
    public var maxTokens: Int

    public init(model: String, temperature: Double, maxTokens: Int) {
        self.model = model
        self.temperature = temperature
        self.maxTokens = maxTokens
    }
}

/// An agent was created by its owner.
///
/// Version 2 groups the model settings. Version 1 (the seed's flat shape: `model`,
/// `temperature` and `max_tokens` beside `name`) is upcast on read.
public struct AgentCreated: DomainEvent {
    public static let eventType = "AgentCreated"
    public static let schemaVersion = 2

    public var agentID: UUID
    public var ownerID: String
    public var name: String
    public var instructions: String
    public var settings: AgentModelSettings
    public var plugins: [String]
    public var createdAt: Date

    public init(
        agentID: UUID, ownerID: String, name: String, instructions: String, settings: AgentModelSettings,
        plugins: [String], createdAt: Date
    ) {
        self.agentID = agentID
        self.ownerID = ownerID
        self.name = name
        self.instructions = instructions
        self.settings = settings
        self.plugins = plugins
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case ownerID = "ownerId"
        case name, instructions, settings, plugins, createdAt
    }

    /// v1 → v2: moves the flat model fields into `settings`, with the seed's defaults for any
    /// that v1 left out.
    static let upcastV1: EventRegistry.Upcaster = { v1 in
        guard case .object(var members) = v1 else {
            throw EventDecodingError.malformed(type: eventType, version: 1, reason: "not an object")
        }
        let settings: [String: JSONValue] = [
            "model": members.removeValue(forKey: "model") ?? .string("gpt-4"),
            "temperature": members.removeValue(forKey: "temperature") ?? .number(0.7),
            "max_tokens": members.removeValue(forKey: "max_tokens") ?? .number(2000),
        ]
        members["settings"] = .object(settings)
        if members["plugins"] == nil { members["plugins"] = .array([]) }
        return .object(members)
    }
}

/// The agent's instructions were replaced.
public struct AgentInstructionsChanged: DomainEvent {
    public static let eventType = "AgentInstructionsChanged"

    public var agentID: UUID
    public var instructions: String
    public var changedAt: Date

    public init(agentID: UUID, instructions: String, changedAt: Date) {
        self.agentID = agentID
        self.instructions = instructions
        self.changedAt = changedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case instructions, changedAt
    }
}

/// The agent was renamed.
public struct AgentRenamed: DomainEvent {
    public static let eventType = "AgentRenamed"

    public var agentID: UUID
    public var name: String
    public var renamedAt: Date

    public init(agentID: UUID, name: String, renamedAt: Date) {
        self.agentID = agentID
        self.name = name
        self.renamedAt = renamedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case name, renamedAt
    }
}

/// The agent's model, temperature or token limit changed; `settings` is the whole new set.
public struct AgentModelSettingsChanged: DomainEvent {
    public static let eventType = "AgentModelSettingsChanged"

    public var agentID: UUID
    public var settings: AgentModelSettings
    public var changedAt: Date

    public init(agentID: UUID, settings: AgentModelSettings, changedAt: Date) {
        self.agentID = agentID
        self.settings = settings
        self.changedAt = changedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case settings, changedAt
    }
}

/// A plugin (a built-in tool such as `math.evaluate`) was offered to the agent's runs.
public struct AgentPluginAdded: DomainEvent {
    public static let eventType = "AgentPluginAdded"

    public var agentID: UUID
    public var plugin: String
    public var addedAt: Date

    public init(agentID: UUID, plugin: String, addedAt: Date) {
        self.agentID = agentID
        self.plugin = plugin
        self.addedAt = addedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case plugin, addedAt
    }
}

/// A plugin was taken away from the agent.
public struct AgentPluginRemoved: DomainEvent {
    public static let eventType = "AgentPluginRemoved"

    public var agentID: UUID
    public var plugin: String
    public var removedAt: Date

    public init(agentID: UUID, plugin: String, removedAt: Date) {
        self.agentID = agentID
        self.plugin = plugin
        self.removedAt = removedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case plugin, removedAt
    }
}

/// The agent was deleted; it accepts no further commands.
public struct AgentDeleted: DomainEvent {
    public static let eventType = "AgentDeleted"

    public var agentID: UUID
    public var deletedAt: Date

    public init(agentID: UUID, deletedAt: Date) {
        self.agentID = agentID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case deletedAt
    }
}

/// The persona an agent's runs speak as: a persona and a label (resolved when each run is
/// requested) or a fixed version.
public struct AgentPersona: Codable, Sendable, Equatable {
    public var personaID: UUID
    public var label: String?
    public var version: Int?

    public init(personaID: UUID, label: String?, version: Int?) {
        self.personaID = personaID
        self.label = label
        self.version = version
    }

    enum CodingKeys: String, CodingKey {
        case personaID = "personaId"
        case label, version
    }
}

/// The agent was given a persona, or (`persona` null) its persona was removed.
public struct AgentPersonaSet: DomainEvent {
    public static let eventType = "AgentPersonaSet"

    public var agentID: UUID
    public var persona: AgentPersona?
    public var setAt: Date

    public init(agentID: UUID, persona: AgentPersona?, setAt: Date) {
        self.agentID = agentID
        self.persona = persona
        self.setAt = setAt
    }

    enum CodingKeys: String, CodingKey {
        case agentID = "agentId"
        case persona, setAt
    }
}

/// The events of the Agent aggregate.
public enum AgentEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .agents }

    case created(AgentCreated)
    case instructionsChanged(AgentInstructionsChanged)
    case renamed(AgentRenamed)
    case modelSettingsChanged(AgentModelSettingsChanged)
    case pluginAdded(AgentPluginAdded)
    case pluginRemoved(AgentPluginRemoved)
    case deleted(AgentDeleted)
    case personaSet(AgentPersonaSet)

    public var payload: any DomainEvent {
        switch self {
        case .created(let event): event
        case .instructionsChanged(let event): event
        case .renamed(let event): event
        case .modelSettingsChanged(let event): event
        case .pluginAdded(let event): event
        case .pluginRemoved(let event): event
        case .deleted(let event): event
        case .personaSet(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as AgentPersonaSet: self = .personaSet(event)
        case let event as AgentCreated: self = .created(event)
        case let event as AgentInstructionsChanged: self = .instructionsChanged(event)
        case let event as AgentRenamed: self = .renamed(event)
        case let event as AgentModelSettingsChanged: self = .modelSettingsChanged(event)
        case let event as AgentPluginAdded: self = .pluginAdded(event)
        case let event as AgentPluginRemoved: self = .pluginRemoved(event)
        case let event as AgentDeleted: self = .deleted(event)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The Agents module's stored event types.
    public static let agents: EventRegistry = {
        var registry = EventRegistry()
        registry.register(AgentCreated.self, upcasters: [1: AgentCreated.upcastV1])
        registry.register(AgentInstructionsChanged.self)
        registry.register(AgentRenamed.self)
        registry.register(AgentModelSettingsChanged.self)
        registry.register(AgentPluginAdded.self)
        registry.register(AgentPluginRemoved.self)
        registry.register(AgentDeleted.self)
        registry.register(AgentPersonaSet.self)
        return registry
    }()
}
