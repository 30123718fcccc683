import Events
import Foundation

/// The Agent aggregate: an owner's configured agent. Validation of names and model settings
/// happens here, so every entry point (API, CLI, workers) gets the same rules.
public enum AgentDecider: SnapshottingDecider {
    public enum Command: Sendable, Equatable {
        case create(CreateAgent)
        case changeInstructions(ChangeAgentInstructions)
        case delete(DeleteAgent)
    }

    public struct State: Sendable, Codable, Equatable {
        public enum Status: String, Sendable, Codable { case absent, active, deleted }
        public var status: Status = .absent
        public var ownerID: String?
        public var name: String?
        public var instructions: String?
    }

    public static let category = "agent"
    public static let stateVersion = 1
    public static let initialState = State()

    public static func decide(_ command: Command, state: State) throws -> [AgentEvent] {
        switch command {
        case .create(let create):
            guard state.status == .absent else {
                throw DomainError(.conflict, code: "agent.exists", "agent \(create.agentID) already exists")
            }
            try create.validate()
            return [.created(AgentCreated(
                agentID: create.agentID, ownerID: create.ownerID, name: create.name, instructions: create.instructions,
                settings: create.settings, plugins: create.plugins, createdAt: create.now))]
        case .changeInstructions(let change):
            try requireActive(state)
            guard change.instructions != state.instructions else { return [] }
            return [.instructionsChanged(AgentInstructionsChanged(
                agentID: change.agentID, instructions: change.instructions, changedAt: change.now))]
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
        case .instructionsChanged(let changed):
            state.instructions = changed.instructions
        case .deleted:
            state.status = .deleted
        }
        return state
    }

    private static func requireActive(_ state: State) throws {
        switch state.status {
        case .absent: throw DomainError(.notFound, code: "agent.not_found", "agent not found")
        case .deleted: throw DomainError(.conflict, code: "agent.deleted", "agent is deleted and accepts no commands")
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
    public var now: Date

    public init(
        agentID: UUID, ownerID: String, name: String, instructions: String, settings: AgentModelSettings,
        plugins: [String] = [], now: Date
    ) {
        self.agentID = agentID
        self.ownerID = ownerID
        self.name = name
        self.instructions = instructions
        self.settings = settings
        self.plugins = plugins
        self.now = now
    }

    func validate() throws {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...255).contains(trimmed.count) else {
            throw DomainError(.invalid, code: "agent.name_length", "name must be 1 to 255 characters")
        }
        guard (0...2).contains(settings.temperature) else {
            throw DomainError(.invalid, code: "agent.temperature_range", "temperature must be between 0 and 2")
        }
        guard settings.maxTokens > 0 else {
            throw DomainError(.invalid, code: "agent.max_tokens", "max_tokens must be greater than 0")
        }
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
