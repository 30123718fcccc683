import Commands
import Events
import Foundation
import Hummingbird
import Projections

/// The Agents routes under `/api/v1/agents`: commands through the deciders' handlers (write
/// side), queries from the read models. Another owner's agent or execution answers 404, never
/// 403, so ids do not leak.
public struct AgentsController: Sendable {
    public struct Settings: Sendable {
        /// The model new agents get when the request names none.
        public var defaultModel: String
        public var defaultTemperature: Double
        public var defaultMaxTokens: Int
        /// A run's time limit when the request sets none (seed: 300 s).
        public var defaultTimeoutSeconds: Int
        public var maxAttempts: Int
        /// How long a query waits for `X-Chronicle-After` before answering from the model as it is.
        public var readYourWritesTimeout: Duration

        public init(
            defaultModel: String = OfflineLanguageModel.modelName, defaultTemperature: Double = 0.7, defaultMaxTokens: Int = 2000,
            defaultTimeoutSeconds: Int = 300, maxAttempts: Int = 3, readYourWritesTimeout: Duration = .seconds(5)
        ) {
            self.defaultModel = defaultModel
            self.defaultTemperature = defaultTemperature
            self.defaultMaxTokens = defaultMaxTokens
            self.defaultTimeoutSeconds = defaultTimeoutSeconds
            self.maxAttempts = maxAttempts
            self.readYourWritesTimeout = readYourWritesTimeout
        }
    }

    let agents: CommandHandler<AgentDecider>
    let executions: CommandHandler<AgentExecutionDecider>
    let queries: any AgentQueries
    /// The process's push hub: what the run stream listens to.
    let hub: EventHub
    /// Resolves and renders agents' personas; nil where the Personas module is not assembled.
    let personas: PersonaPrompts?
    let settings: Settings

    public init(
        store: any EventStore, snapshots: (any SnapshotStore)? = nil, queries: any AgentQueries, hub: EventHub, personas: PersonaPrompts? = nil,
        settings: Settings = .init()
    ) {
        self.personas = personas
        agents = CommandHandler(store: store, snapshots: snapshots, policy: SnapshotPolicy(every: [AgentDecider.category: 50]))
        executions = CommandHandler(store: store)
        self.queries = queries
        self.hub = hub
        self.settings = settings
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get(":id", use: show)
        group.patch(":id", use: update)
        group.delete(":id", use: delete)
        group.get(":id/usage", use: usage)
        group.post(":id/execute", use: execute)
        group.get(":id/executions", use: listExecutions)
        group.get(":id/executions/:exec_id", use: showExecution)
        group.post(":id/executions/:exec_id/cancel", use: cancel)
        group.get(":id/executions/:exec_id/stream", use: stream)
    }

    // MARK: Commands

    @Sendable func create(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let body = try await request.decode(as: AgentDTO.Create.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let agentID = command.derivedID("agent")
        let persona = try body.persona.map { try $0.reference() }
        if let persona { try await checkPersona(persona, owner: principal.userID) }
        let settings = AgentModelSettings(
            model: body.model ?? self.settings.defaultModel, temperature: body.temperature ?? self.settings.defaultTemperature,
            maxTokens: body.maxTokens ?? self.settings.defaultMaxTokens)
        let result = try await agents.handle(
            .create(CreateAgent(
                agentID: agentID, ownerID: principal.userID, name: body.name, instructions: body.instructions ?? "", settings: settings,
                plugins: body.plugins ?? [], persona: persona, now: command.now)),
            on: StreamID(category: AgentDecider.category, id: agentID), context: command)
        return try Reply.json(
            AgentDTO.Agent(id: agentID, state: result.state, version: result.streamVersion, updatedAt: nil), status: .created,
            location: "/api/v1/agents/\(agentID.uuidString.lowercased())", version: result.streamVersion, position: result.append?.checkpoint,
            context: context)
    }

    @Sendable func update(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let ifMatch = try Reply.ifMatch(request)
        let agent = try await ownedAgent(agentID, principal)
        let body = try await request.decode(as: AgentDTO.Update.self, context: context)
        guard !body.isEmpty else {
            throw Problem(.unprocessableContent, code: "agent.update_empty", detail: "the body changes nothing: give at least one of name, instructions, model, temperature, max_tokens, plugins or persona")
        }
        let persona = try body.persona.map { try $0.map { try $0.reference() } }
        if let set = persona, let chosen = set { try await checkPersona(chosen, owner: agent.ownerID ?? principal.userID) }
        let command = try CommandContext.from(request, context: context)
        let result = try await agents.handle(
            .update(UpdateAgent(
                agentID: agentID, name: body.name, instructions: body.instructions, model: body.model, temperature: body.temperature,
                maxTokens: body.maxTokens, plugins: body.plugins, persona: persona, now: command.now)),
            on: StreamID(category: AgentDecider.category, id: agentID), context: command, ifMatch: ifMatch)
        return try Reply.json(
            AgentDTO.Agent(id: agentID, state: result.state, version: result.streamVersion, updatedAt: command.now), status: .ok,
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func delete(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let ifMatch = try Reply.ifMatch(request)
        _ = try await ownedAgent(agentID, principal)
        let command = try CommandContext.from(request, context: context)
        let result = try await agents.handle(
            .delete(DeleteAgent(agentID: agentID, now: command.now)), on: StreamID(category: AgentDecider.category, id: agentID),
            context: command, ifMatch: ifMatch)
        return try Reply.json(
            AgentDTO.Deleted(id: agentID.uuidString.lowercased(), status: "deleted"), status: .accepted, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    @Sendable func execute(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let agent = try await ownedAgent(agentID, principal)
        let body = try await request.decode(as: AgentDTO.Execute.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let executionID = command.derivedID("execution")
        var persona: AgentExecutionPersona?
        if let chosen = agent.persona, let owner = agent.ownerID {
            guard let personas else { throw Problem(.unprocessableContent, code: "agent.persona_unavailable", detail: "personas are not available in this process") }
            persona = try await personas.render(chosen, owner: owner, parameters: body.parameters ?? [:])
        }
        let result = try await executions.handle(
            .request(RequestAgentExecution(
                executionID: executionID, agentID: agentID, agent: agent, input: body.input, parameters: body.parameters ?? [:],
                timeoutSeconds: body.timeoutSeconds ?? settings.defaultTimeoutSeconds, maxAttempts: settings.maxAttempts, persona: persona,
                now: command.now)),
            on: AgentExecutionDecider.streamID(executionID), context: command)
        let typical = (try? await queries.typicalDurationMs(agent: agentID)) ?? nil
        let estimate = max(1, Int(((Double(typical ?? 2000)) / 1000).rounded(.up)))
        return try Reply.json(
            AgentDTO.Accepted(executionID: executionID.uuidString.lowercased(), status: result.state.status.rawValue, estimatedTime: estimate),
            status: .accepted,
            location: "/api/v1/agents/\(agentID.uuidString.lowercased())/executions/\(executionID.uuidString.lowercased())",
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func cancel(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let executionID = try Reply.pathID(context, "exec_id", missing: Self.executionNotFound)
        let stream = AgentExecutionDecider.streamID(executionID)
        let (state, _) = try await executions.load(stream.description)
        guard state.status != .absent, state.agentID == agentID, let owner = state.ownerID, principal.mayAccess(owner: owner) else {
            throw Self.executionNotFound
        }
        let command = try CommandContext.from(request, context: context)
        let result = try await executions.handle(.cancel(CancelAgentExecution(executionID: executionID, now: command.now)), on: stream, context: command)
        return try Reply.json(
            AgentDTO.Cancelled(executionID: executionID.uuidString.lowercased(), status: result.state.status.rawValue), status: .accepted,
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    /// The agent's state from its stream, if the principal may use it; 404 otherwise (absent,
    /// deleted or another owner's). Commands decide on this, never on a read model.
    func ownedAgent(_ id: UUID, _ principal: Principal) async throws -> AgentDecider.State {
        let (state, _) = try await agents.load(StreamID(category: AgentDecider.category, id: id).description)
        guard state.status == .active, let owner = state.ownerID, principal.mayAccess(owner: owner) else { throw Self.agentNotFound }
        return state
    }

    /// An agent may speak only as a persona of its owner's that exists now.
    func checkPersona(_ persona: AgentPersona, owner: String) async throws {
        guard let personas else { throw Problem(.unprocessableContent, code: "agent.persona_unavailable", detail: "personas are not available in this process") }
        _ = try await personas.resolve(persona, owner: owner)
    }

    static let agentNotFound = Problem(.notFound, code: "agent.not_found", detail: "no such agent")
    static let executionNotFound = Problem(.notFound, code: "execution.not_found", detail: "no such execution")

}

extension AgentsController {
    /// Its routes, under `/api/v1/agents`.
    public var mount: RouteMount { RouteMount("agents", add: { addRoutes(to: $0) }) }
}
