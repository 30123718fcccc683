import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Projections

extension AgentsController {
    @Sendable func list(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let (page, pageSize) = try Reply.paging(request)
        try await waitIfAsked(request, queries.waitForAgents)
        let result = try await queries.agents(owner: principal.isAdmin ? nil : principal.userID, page: page, pageSize: pageSize)
        return try Reply.json(Paged(result, AgentDTO.Agent.init), status: .ok, context: context)
    }

    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        try await waitIfAsked(request, queries.waitForAgents)
        guard let agent = try await queries.agent(agentID), agent.status != "deleted", principal.mayAccess(owner: agent.ownerID) else {
            throw Self.agentNotFound
        }
        return try Reply.json(AgentDTO.Agent(agent), status: .ok, version: agent.version, context: context)
    }

    @Sendable func usage(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let days = try Reply.integer(request, "days", default: 30, range: 1...366)
        guard let agent = try await queries.agent(agentID), agent.status != "deleted", principal.mayAccess(owner: agent.ownerID) else {
            throw Self.agentNotFound
        }
        let usage = try await queries.usage(agent: agentID, days: days)
        return try Reply.json(AgentDTO.Usage(agentID: agentID.uuidString.lowercased(), days: usage.map(AgentDTO.UsageDay.init)), status: .ok, context: context)
    }

    static let statuses: Set<String> = ["pending", "running", "completed", "failed", "cancelled"]

    @Sendable func listExecutions(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let (page, pageSize) = try Reply.paging(request)
        let status = request.uri.queryParameters.get("status")
        if let status, !Self.statuses.contains(status) {
            throw Problem(.badRequest, code: "request.invalid_query", detail: "status must be one of \(Self.statuses.sorted().joined(separator: ", "))")
        }
        // It reads two read models (the agent, for its owner, and its runs): with
        // X-Chronicle-After it waits for both, or the agent could still be a 404.
        try await waitIfAsked(request) { checkpoint, timeout in
            async let agents = queries.waitForAgents(checkpoint, timeout: timeout)
            let executions = try await queries.waitForExecutions(checkpoint, timeout: timeout)
            return try await agents && executions
        }
        guard let agent = try await queries.agent(agentID), principal.mayAccess(owner: agent.ownerID) else { throw Self.agentNotFound }
        let result = try await queries.executions(agent: agentID, status: status, page: page, pageSize: pageSize)
        return try Reply.json(Paged(result, AgentDTO.Execution.init), status: .ok, context: context)
    }

    @Sendable func showExecution(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let view = try await visibleExecution(request, context)
        return try Reply.json(AgentDTO.Execution(view), status: .ok, version: view.version, context: context)
    }

    func visibleExecution(_ request: Request, _ context: ChronicleRequestContext) async throws -> ExecutionView {
        let principal = try context.requirePrincipal()
        let agentID = try Reply.pathID(context, "id", missing: Self.agentNotFound)
        let executionID = try Reply.pathID(context, "exec_id", missing: Self.executionNotFound)
        try await waitIfAsked(request, queries.waitForExecutions)
        guard let view = try await queries.execution(executionID), view.agentID == agentID, principal.mayAccess(owner: view.ownerID) else {
            throw Self.executionNotFound
        }
        return view
    }

    /// Server-Sent Events: one `status` event now and one at each change, until the run ends
    /// (the last event is the terminal one) or an hour passes; a comment every 15 s keeps
    /// proxies from closing an idle stream. Changes come from the process's push hub, not from
    /// polling: each event of the run's stream re-reads the run once its read model has it. A
    /// client the hub drops for falling behind gets a `dropped` event and reconnects; the first
    /// event of a stream is always the run's current state, so it misses no change.
    @Sendable func stream(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let executionID = try Reply.pathID(context, "exec_id", missing: Self.executionNotFound)
        // Subscribe first, then read: every change after the read arrives through the hub.
        let subscription = hub.subscribe(.stream(AgentExecutionDecider.streamID(executionID).description))
        let first: ExecutionView
        do {
            if let position = hub.position { _ = try? await queries.waitForExecutions(position, timeout: settings.readYourWritesTimeout) }
            first = try await visibleExecution(request, context)
        } catch {
            subscription.cancel()
            throw error
        }
        let queries = self.queries
        let wait = settings.readYourWritesTimeout
        let body = ResponseBody { writer in
            var last = AgentDTO.Execution(first)
            try await writer.write(Self.event(last, id: first.version))
            guard !first.isTerminal else {
                subscription.cancel()
                try await writer.finish(nil)
                return
            }
            try await ServerSentEvents.pump(subscription, to: &writer) { event, out in
                _ = try? await queries.waitForExecutions(event.checkpoint, timeout: wait)
                guard let view = try? await queries.execution(first.id) else { return true }
                let current = AgentDTO.Execution(view)
                if current != last {
                    last = current
                    out = try Self.event(current, id: view.version)
                }
                return !view.isTerminal
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: ServerSentEvents.headers, body: body)
    }

    static func event(_ execution: AgentDTO.Execution, id: Int64) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let data = String(decoding: try encoder.encode(execution), as: UTF8.self)
        return ServerSentEvents.frame(id: String(id), event: "status", data: data)
    }

    /// Read-your-writes: `X-Chronicle-After` (the `X-Chronicle-Position` of a command's answer)
    /// makes the query wait, bounded, until its read model has passed that position.
    func waitIfAsked(_ request: Request, _ wait: (Checkpoint, Duration) async throws -> Bool) async throws {
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, wait)
    }
}
