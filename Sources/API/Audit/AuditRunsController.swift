import Commands
import Events
import Foundation
import Hummingbird
import Workers

/// Agent runs under audit, under `/api/v1/audit/executions`: a replay through the worker code
/// with the run's own recorded model answers, a fork from one of its model calls, and the
/// comparison of a fork with its origin. Owner-scoped from the log like every audit route.
public struct AuditRunsController: Sendable {
    let store: any EventStore
    let replayer: AgentRunReplay
    let executions: CommandHandler<AgentExecutionDecider>
    let personas: PersonaPrompts?
    let owners: StreamOwners

    public init(store: any EventStore, replayer: AgentRunReplay, personas: PersonaPrompts?) {
        self.store = store
        self.replayer = replayer
        self.personas = personas
        executions = CommandHandler(store: store)
        owners = StreamOwners(store: store)
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post(":execution_id/replay", use: replay)
        group.post(":execution_id/fork", use: fork)
        group.get(":execution_id/comparison", use: comparison)
    }

    static let notFound = Problem(.notFound, code: "execution.not_found", detail: "no such execution")

    /// The run's events, if the principal may read its stream (its owner, or an admin).
    func run(_ context: ChronicleRequestContext) async throws -> (UUID, [AgentExecutionEvent]) {
        let principal = try context.requirePrincipal()
        let id = try Reply.pathID(context, "execution_id", missing: Self.notFound)
        let stream = AgentExecutionDecider.streamID(id).description
        let recorded = try await store.readStream(stream, from: 1, direction: .forward, limit: 100_000)
        guard !recorded.isEmpty else { throw Self.notFound }
        if !principal.isAdmin {
            guard try await owners.owner(of: stream) == principal.userID else { throw Self.notFound }
        }
        return (id, try recorded.map { try AgentExecutionEvent.registry.decode($0, as: AgentExecutionEvent.self) })
    }

    @Sendable func replay(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (_, events) = try await run(context)
        do {
            return try Reply.json(try await replayer.replay(events).json, status: .ok, context: context)
        } catch let error as AgentRunReplay.NotReplayable {
            throw Problem(.unprocessableContent, code: "audit.not_replayable", detail: error.description)
        }
    }

    struct ForkBody: Decodable {
        var fromCall: Int?
        var model: String?
        var instructions: String?
        var persona: PersonaReference?

        struct PersonaReference: Decodable {
            var id: String
            var label: String?
            var version: Int?
        }

        enum CodingKeys: String, CodingKey {
            case model, instructions, persona
            case fromCall = "from_call"
        }
    }

    struct Forked: Encodable {
        var executionID: String
        var forkedFrom: String
        var fromCall: Int
        var status: String

        enum CodingKeys: String, CodingKey {
            case status
            case executionID = "execution_id"
            case forkedFrom = "forked_from"
            case fromCall = "from_call"
        }
    }

    /// `{from_call, model?, instructions?, persona?: {id, label|version}}` → 202 with the new run.
    @Sendable func fork(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let (originID, events) = try await run(context)
        guard case .requested(let origin)? = events.first else { throw Self.notFound }
        let body = try await request.decode(as: ForkBody.self, context: context)
        let calls = events.lastAttemptCalls.calls
        var persona: AgentExecutionPersona?
        if let chosen = body.persona {
            guard let personas else {
                throw Problem(.unprocessableContent, code: "agent.persona_unavailable", detail: "personas are not available in this process")
            }
            guard let personaID = UUID(uuidString: chosen.id) else {
                throw Problem(.unprocessableContent, code: "agent.persona_unavailable", detail: "persona.id is not a persona's id")
            }
            persona = try await personas.render(
                AgentPersona(personaID: personaID, label: chosen.label, version: chosen.version), owner: origin.ownerID, parameters: origin.parameters)
        }
        let command = try CommandContext.from(request, context: context)
        let executionID = command.derivedID("execution")
        let fromCall = body.fromCall ?? 1
        let result = try await executions.handle(
            .fork(ForkAgentExecution(
                executionID: executionID, origin: origin, originCalls: calls, fromCall: fromCall, model: body.model,
                instructions: body.instructions, persona: persona, now: command.now)),
            on: AgentExecutionDecider.streamID(executionID), context: command)
        let id = executionID.uuidString.lowercased()
        return try Reply.json(
            Forked(executionID: id, forkedFrom: originID.uuidString.lowercased(), fromCall: fromCall, status: result.state.status.rawValue),
            status: .accepted, location: "/api/v1/agents/\(origin.agentID.uuidString.lowercased())/executions/\(id)",
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    /// A run's figures from its events.
    static func summary(_ id: UUID, _ events: [AgentExecutionEvent]) -> JSONValue {
        var status = "pending", output: JSONValue = .null, error: JSONValue = .null, model: JSONValue = .null
        var prompt = 0, completion = 0, cost = 0.0, calls = 0, tools = 0
        var started: Date?, ended: Date?, duration: JSONValue = .null
        for event in events {
            switch event {
            case .requested(let requested): model = .string(requested.settings.model)
            case .started(let start):
                status = "running"
                started = started ?? start.startedAt
            case .llmCallRecorded(let call):
                calls += 1
                prompt += call.usage.promptTokens
                completion += call.usage.completionTokens
                cost += call.cost
            case .toolInvoked: tools += 1
            case .completed(let done):
                status = "completed"
                output = .string(done.output)
                model = .string(done.model)
                duration = .number(Double(done.durationMs))
                ended = done.completedAt
            case .failed(let failed):
                status = "failed"
                error = .string(failed.error)
                ended = failed.failedAt
            case .timedOut(let timedOut):
                status = "failed"
                error = .string("the run did not finish within \(timedOut.timeoutSeconds) s")
                ended = timedOut.timedOutAt
            case .cancelled(let cancelled):
                status = "cancelled"
                ended = cancelled.cancelledAt
            }
        }
        if duration == .null, let started, let ended { duration = .number((ended.timeIntervalSince(started) * 1000).rounded()) }
        return .object([
            "execution_id": .string(id.uuidString.lowercased()), "status": .string(status), "model": model, "output": output, "error": error,
            "prompt_tokens": .number(Double(prompt)), "completion_tokens": .number(Double(completion)),
            "total_tokens": .number(Double(prompt + completion)), "cost": .number((cost * 1e8).rounded() / 1e8),
            "duration_ms": duration, "model_calls": .number(Double(calls)), "tool_calls": .number(Double(tools)),
        ])
    }

    /// A fork beside its origin: outputs, tokens, cost, duration; every figure of every model call
    /// the run recorded, in any attempt (what the provider billed).
    @Sendable func comparison(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let (id, events) = try await run(context)
        guard case .requested(let requested)? = events.first, let fork = requested.fork else {
            throw Problem(.unprocessableContent, code: "audit.not_a_fork", detail: "this run was not forked from another; nothing to compare it with")
        }
        let origin = try await store.readStream(
            AgentExecutionDecider.streamID(fork.originExecutionID).description, from: 1, direction: .forward, limit: 100_000
        ).map { try AgentExecutionEvent.registry.decode($0, as: AgentExecutionEvent.self) }
        let before = Self.summary(fork.originExecutionID, origin), after = Self.summary(id, events)
        func number(_ json: JSONValue, _ key: String) -> Double? {
            if case .object(let fields) = json, case .number(let value)? = fields[key] { return value }
            return nil
        }
        var delta: [String: JSONValue] = [:]
        for key in ["total_tokens", "prompt_tokens", "completion_tokens", "cost", "duration_ms", "model_calls", "tool_calls"] {
            if let a = number(before, key), let b = number(after, key) { delta[key] = .number(((b - a) * 1e8).rounded() / 1e8) }
        }
        var sameOutput: JSONValue = .null
        if case .object(let a) = before, case .object(let b) = after, a["status"] == .string("completed"), b["status"] == .string("completed") {
            sameOutput = .bool(a["output"] == b["output"])
        }
        return try Reply.json(
            JSONValue.object([
                "origin": before, "fork": after, "from_call": .number(Double(fork.fromCall)), "same_output": sameOutput,
                "delta": .object(delta),
            ]), status: .ok, context: context)
    }
}

extension AuditRunsController {
    /// Its routes, under `/api/v1/audit/executions`.
    public var mount: RouteMount { RouteMount("audit/executions", add: { addRoutes(to: $0) }) }
}
