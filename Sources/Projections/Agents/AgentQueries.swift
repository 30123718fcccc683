import Events
import Foundation

/// An agent as the query API shows it, from the `agents_by_owner` read model.
public struct AgentView: Sendable, Equatable {
    public var id: UUID
    public var ownerID: String
    public var name: String
    public var instructions: String
    public var model: String
    public var temperature: Double
    public var maxTokens: Int
    public var plugins: [String]
    public var status: String
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date
    public var persona: AgentPersona?

    public init(
        id: UUID, ownerID: String, name: String, instructions: String, model: String, temperature: Double, maxTokens: Int,
        plugins: [String], status: String, version: Int64, createdAt: Date, updatedAt: Date, persona: AgentPersona? = nil
    ) {
        self.persona = persona
        self.id = id
        self.ownerID = ownerID
        self.name = name
        self.instructions = instructions
        self.model = model
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.plugins = plugins
        self.status = status
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// An execution as the query API shows it, from the Redis cache or `agent_executions`.
public struct ExecutionView: Sendable, Equatable {
    public var id: UUID
    public var agentID: UUID
    public var ownerID: String
    public var status: String
    public var output: String?
    public var error: String?
    public var model: String?
    public var promptTokens: Int
    public var completionTokens: Int
    public var cost: Double
    public var durationMs: Int?
    public var requestedAt: Date?
    public var finishedAt: Date?
    public var version: Int64
    /// The run this one was forked from, and the model call it started at.
    public var forkedFrom: UUID?
    public var fromCall: Int?

    public init(
        id: UUID, agentID: UUID, ownerID: String, status: String, output: String?, error: String?, model: String?, promptTokens: Int,
        completionTokens: Int, cost: Double, durationMs: Int?, requestedAt: Date?, finishedAt: Date?, version: Int64
    ) {
        self.id = id
        self.agentID = agentID
        self.ownerID = ownerID
        self.status = status
        self.output = output
        self.error = error
        self.model = model
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
        self.durationMs = durationMs
        self.requestedAt = requestedAt
        self.finishedAt = finishedAt
        self.version = version
    }

    public var isTerminal: Bool { ["completed", "failed", "cancelled"].contains(status) }
}

/// One page of a list and where it sits in the whole.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var page: Int
    public var pageSize: Int
    public var totalCount: Int

    public init(items: [Item], page: Int, pageSize: Int, totalCount: Int) {
        self.items = items
        self.page = page
        self.pageSize = pageSize
        self.totalCount = totalCount
    }
}

/// Token and cost totals of one agent on one UTC day.
public struct AgentUsageDay: Sendable, Equatable {
    public var day: String
    public var modelCalls: Int
    public var executions: Int
    public var completed: Int
    public var failed: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var cost: Double

    public init(day: String, modelCalls: Int, executions: Int, completed: Int, failed: Int, promptTokens: Int, completionTokens: Int, cost: Double) {
        self.day = day
        self.modelCalls = modelCalls
        self.executions = executions
        self.completed = completed
        self.failed = failed
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
    }
}

/// The Agents read side the query API reads (Postgres and Redis, in Adapters). `owner` nil
/// means any owner (an admin's view).
public protocol AgentQueries: Sendable {
    func agents(owner: String?, page: Int, pageSize: Int) async throws -> Page<AgentView>
    func agent(_ id: UUID) async throws -> AgentView?
    func executions(agent: UUID, status: String?, page: Int, pageSize: Int) async throws -> Page<ExecutionView>
    /// The Redis cache first, then Postgres.
    func execution(_ id: UUID) async throws -> ExecutionView?
    func usage(agent: UUID, days: Int) async throws -> [AgentUsageDay]
    /// Median duration of the agent's recent completed runs, if it has any.
    func typicalDurationMs(agent: UUID) async throws -> Int?
    /// Waits (bounded) until the read models have passed `checkpoint`; false if time ran out.
    func waitForAgents(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool
    func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool
}
