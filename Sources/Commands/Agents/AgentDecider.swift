import Events
import Foundation

/// The Agent aggregate: an owner's configured agent. Validation of names and model settings
/// happens here, so every entry point (API, CLI, workers) gets the same rules.
public enum AgentDecider: SnapshottingDecider {
    public enum Command: Sendable, Equatable {
        case create(CreateAgent)
        case changeInstructions(ChangeAgentInstructions)
        case update(UpdateAgent)
        case addPlugin(AddAgentPlugin)
        case removePlugin(RemoveAgentPlugin)
        case delete(DeleteAgent)
    }

    public struct State: Sendable, Codable, Equatable {
        public enum Status: String, Sendable, Codable { case absent, active, deleted }
        public var status: Status = .absent
        public var ownerID: String?
        public var name: String?
        public var instructions: String?
        public var settings: AgentModelSettings?
        public var plugins: [String] = []
        public var createdAt: Date?
        public var persona: AgentPersona?
    }

    public static let category = "agent"
    public static let stateVersion = 3
    public static let initialState = State()

    public static func decide(_ command: Command, state: State) throws -> [AgentEvent] {
        switch command {
        case .create(let create):
            guard state.status == .absent else {
                throw DomainError(.conflict, code: .agentExists, "agent \(create.agentID) already exists")
            }
            try create.validate()
            var events: [AgentEvent] = [.created(AgentCreated(
                agentID: create.agentID, ownerID: create.ownerID, name: create.name, instructions: create.instructions,
                settings: create.settings, plugins: create.plugins, createdAt: create.now))]
            if let persona = create.persona {
                try AgentRules.validate(persona)
                events.append(.personaSet(AgentPersonaSet(agentID: create.agentID, persona: persona, setAt: create.now)))
            }
            return events
        case .changeInstructions(let change):
            try requireActive(state)
            guard change.instructions != state.instructions else { return [] }
            try AgentRules.validate(instructions: change.instructions)
            return [.instructionsChanged(AgentInstructionsChanged(
                agentID: change.agentID, instructions: change.instructions, changedAt: change.now))]
        case .update(let update):
            try requireActive(state)
            return try update.events(from: state)
        case .addPlugin(let add):
            try requireActive(state)
            try AgentPlugins.validate([add.plugin])
            guard !state.plugins.contains(add.plugin) else { return [] }
            return [.pluginAdded(AgentPluginAdded(agentID: add.agentID, plugin: add.plugin, addedAt: add.now))]
        case .removePlugin(let remove):
            try requireActive(state)
            guard state.plugins.contains(remove.plugin) else {
                throw DomainError(.notFound, code: .agentPluginNotFound, "the agent has no plugin '\(remove.plugin)'")
            }
            return [.pluginRemoved(AgentPluginRemoved(agentID: remove.agentID, plugin: remove.plugin, removedAt: remove.now))]
        case .delete(let delete):
            try requireActive(state)
            return [.deleted(AgentDeleted(agentID: delete.agentID, deletedAt: delete.now))]
        }
    }

    public static func evolve(_ state: State, _ event: AgentEvent) -> State {
        var state = state
        switch event {
        case .created(let created):
            state.status = .active
            state.ownerID = created.ownerID
            state.name = created.name
            state.instructions = created.instructions
            state.settings = created.settings
            state.plugins = created.plugins
            state.createdAt = created.createdAt
        case .instructionsChanged(let changed):
            state.instructions = changed.instructions
        case .renamed(let renamed):
            state.name = renamed.name
        case .modelSettingsChanged(let changed):
            state.settings = changed.settings
        case .pluginAdded(let added):
            if !state.plugins.contains(added.plugin) { state.plugins.append(added.plugin) }
        case .pluginRemoved(let removed):
            state.plugins.removeAll { $0 == removed.plugin }
        case .deleted:
            state.status = .deleted
        case .personaSet(let set):
            state.persona = set.persona
        }
        return state
    }

    static func requireActive(_ state: State) throws {
        switch state.status {
        case .absent: throw DomainError(.notFound, code: .agentNotFound, "agent not found")
        case .deleted: throw DomainError(.conflict, code: .agentDeleted, "agent is deleted and accepts no commands")
        case .active: return
        }
    }
}

/// Create an agent for its owner.
public struct CreateAgent: Sendable, Equatable {
    public var agentID: UUID
    public var ownerID: String
    public var name: String
    public var instructions: String
    public var settings: AgentModelSettings
    public var plugins: [String]
    /// The persona its runs speak as (checked to exist and be the owner's by the caller).
    public var persona: AgentPersona?
    public var now: Date

    public init(
        agentID: UUID, ownerID: String, name: String, instructions: String, settings: AgentModelSettings,
        plugins: [String] = [], persona: AgentPersona? = nil, now: Date
    ) {
        self.persona = persona
        self.agentID = agentID
        self.ownerID = ownerID
        self.name = name
        self.instructions = instructions
        self.settings = settings
        self.plugins = plugins
        self.now = now
    }

    func validate() throws {
        try AgentRules.validate(name: name)
        try AgentRules.validate(instructions: instructions)
        try AgentRules.validate(settings)
        try AgentPlugins.validate(plugins)
        guard Set(plugins).count == plugins.count else {
            throw DomainError(.invalid, code: .agentPluginDuplicate, "a plugin is listed twice")
        }
    }
}

/// The rules every agent's fields follow, wherever they are set.
enum AgentRules {
    /// A persona is named by a label or a version, not both.
    static func validate(_ persona: AgentPersona) throws {
        guard (persona.label == nil) != (persona.version == nil) else {
            throw DomainError(.invalid, code: .agentPersonaInvalid, "a persona is given with a label or a version, not both and not neither")
        }
        if let version = persona.version, version < 1 {
            throw DomainError(.invalid, code: .agentPersonaInvalid, "a persona version is 1 or more")
        }
        if let label = persona.label, !TextLimit(characters: 1...64).admits(label) {
            throw DomainError(.invalid, code: .agentPersonaInvalid, "a persona label is 1 to 64 characters")
        }
    }

    /// Far above any model's output limit today; a bound so nonsense (2^62) is refused here.
    static let maxTokensLimit = 1_000_000
    public static let name = TextLimit(characters: 1...255)
    public static let model = TextLimit(characters: 1...200)
    public static let instructions = TextLimit(characters: 0...100_000)

    static func validate(name: String) throws {
        try Self.name.check(name.trimmingCharacters(in: .whitespacesAndNewlines), field: "name", code: .agentNameLength)
    }

    static func validate(instructions: String) throws {
        try Self.instructions.check(instructions, field: "instructions", code: .agentInstructionsLength)
    }

    static func validate(_ settings: AgentModelSettings) throws {
        try Self.model.check(settings.model.trimmingCharacters(in: .whitespaces), field: "model", code: .agentModel)
        guard (0...2).contains(settings.temperature) else {
            throw DomainError(.invalid, code: .agentTemperatureRange, "temperature must be between 0 and 2")
        }
        guard (1...maxTokensLimit).contains(settings.maxTokens) else {
            throw DomainError(.invalid, code: .agentMaxTokens, "max_tokens must be from 1 to \(maxTokensLimit)")
        }
    }
}

/// Change any of an agent's fields at once (`PATCH`). Nil leaves a field as it is; `plugins`
/// replaces the whole set. Only real changes become events.
public struct UpdateAgent: Sendable, Equatable {
    public var agentID: UUID
    public var name: String?
    public var instructions: String?
    public var model: String?
    public var temperature: Double?
    public var maxTokens: Int?
    public var plugins: [String]?
    /// `.some(nil)` removes the persona; nil leaves it.
    public var persona: AgentPersona??
    public var now: Date

    public init(
        agentID: UUID, name: String? = nil, instructions: String? = nil, model: String? = nil, temperature: Double? = nil,
        maxTokens: Int? = nil, plugins: [String]? = nil, persona: AgentPersona?? = nil, now: Date
    ) {
        self.persona = persona
        self.agentID = agentID
        self.name = name
        self.instructions = instructions
        self.model = model
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.plugins = plugins
        self.now = now
    }

    func events(from state: AgentDecider.State) throws -> [AgentEvent] {
        var events: [AgentEvent] = []
        if let name, name != state.name {
            try AgentRules.validate(name: name)
            events.append(.renamed(AgentRenamed(agentID: agentID, name: name, renamedAt: now)))
        }
        if let instructions, instructions != state.instructions {
            try AgentRules.validate(instructions: instructions)
            events.append(.instructionsChanged(AgentInstructionsChanged(agentID: agentID, instructions: instructions, changedAt: now)))
        }
        if let current = state.settings {
            var settings = current
            if let model { settings.model = model }
            if let temperature { settings.temperature = temperature }
            if let maxTokens { settings.maxTokens = maxTokens }
            if settings != current {
                try AgentRules.validate(settings)
                events.append(.modelSettingsChanged(AgentModelSettingsChanged(agentID: agentID, settings: settings, changedAt: now)))
            }
        }
        if let plugins {
            try AgentPlugins.validate(plugins)
            for plugin in state.plugins where !plugins.contains(plugin) {
                events.append(.pluginRemoved(AgentPluginRemoved(agentID: agentID, plugin: plugin, removedAt: now)))
            }
            var seen = Set(state.plugins)
            for plugin in plugins where seen.insert(plugin).inserted {
                events.append(.pluginAdded(AgentPluginAdded(agentID: agentID, plugin: plugin, addedAt: now)))
            }
        }
        if let persona, persona != state.persona {
            if let persona { try AgentRules.validate(persona) }
            events.append(.personaSet(AgentPersonaSet(agentID: agentID, persona: persona, setAt: now)))
        }
        return events
    }
}

/// Offer a plugin to an agent's runs.
public struct AddAgentPlugin: Sendable, Equatable {
    public var agentID: UUID
    public var plugin: String
    public var now: Date

    public init(agentID: UUID, plugin: String, now: Date) {
        self.agentID = agentID
        self.plugin = plugin
        self.now = now
    }
}

/// Take a plugin away from an agent.
public struct RemoveAgentPlugin: Sendable, Equatable {
    public var agentID: UUID
    public var plugin: String
    public var now: Date

    public init(agentID: UUID, plugin: String, now: Date) {
        self.agentID = agentID
        self.plugin = plugin
        self.now = now
    }
}

/// Replace an agent's instructions.
public struct ChangeAgentInstructions: Sendable, Equatable {
    public var agentID: UUID
    public var instructions: String
    public var now: Date

    public init(agentID: UUID, instructions: String, now: Date) {
        self.agentID = agentID
        self.instructions = instructions
        self.now = now
    }
}

/// Delete an agent. Its history stays; it accepts nothing after.
public struct DeleteAgent: Sendable, Equatable {
    public var agentID: UUID
    public var now: Date

    public init(agentID: UUID, now: Date) {
        self.agentID = agentID
        self.now = now
    }
}
