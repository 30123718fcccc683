import Commands
import Events
import Foundation
import Hummingbird
import Projections

/// The Workflows routes under `/api/v1/workflows`. Commands, versions, diffs and time travel read
/// the workflow's stream (folded once per process, then forward: `StateMemo`); `GET /{id}`, the
/// list and blame read the read model. Another owner's workflow answers 404; viewers read only.
public struct WorkflowsController: Sendable {
    public struct Settings: Sendable {
        public var readYourWritesTimeout: Duration

        public init(readYourWritesTimeout: Duration = .seconds(5)) {
            self.readYourWritesTimeout = readYourWritesTimeout
        }
    }

    let workflows: CommandHandler<WorkflowDecider>
    let queries: any WorkflowQueries
    /// Rung after each commit, so live sockets in every process hear of it at once.
    let doorbell: (any Doorbell)?
    let settings: Settings

    public init(workflows: CommandHandler<WorkflowDecider>, queries: any WorkflowQueries, doorbell: (any Doorbell)? = nil, settings: Settings = .init()) {
        self.workflows = workflows
        self.queries = queries
        self.doorbell = doorbell
        self.settings = settings
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get(":id", use: show)
        group.patch(":id", use: edit)
        group.delete(":id", use: delete)
        group.get(":id/blame", use: blame)
        group.get(":id/diff", use: diff)
        group.get(":id/versions", use: listVersions)
        group.post(":id/versions", use: publish)
        group.get(":id/versions/:version", use: showVersion)
        group.post(":id/versions/:version/restore", use: restore)
        group.post(":id/versions/:version/deploy", use: deploy)
    }

    static let notFound = Problem(.notFound, code: "workflow.not_found", detail: "no such workflow")

    static func location(_ id: UUID) -> String { "/api/v1/workflows/\(WorkflowDTO.id(id))" }

    // MARK: The draft

    @Sendable func create(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let body = try await request.decode(as: WorkflowDTO.Create.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let workflowID = command.derivedID("workflow")
        let result = try await workflows.handle(
            .create(.init(
                workflowID: workflowID, ownerID: principal.userID, tenantID: principal.tenantID, name: body.name, description: body.description ?? "",
                now: command.now)),
            on: WorkflowDecider.streamID(workflowID), context: command)
        await doorbell?.ring(commit: result.append)
        return try Reply.json(
            WorkflowDTO.Workflow(workflowID, result.state, version: result.streamVersion), status: .created, location: Self.location(workflowID),
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func list(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let (page, pageSize) = try Reply.paging(request)
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForWorkflows)
        let found = try await queries.workflows(owner: principal.isAdmin ? nil : principal.userID, page: page, pageSize: pageSize)
        return try Reply.json(
            Paged(found, WorkflowDTO.Summary.init),
            status: .ok, context: context)
    }

    /// The draft from the read model (`X-Chronicle-After` waits for a write), or with
    /// `?at_version=N` the graph as it was at stream version N, folded from the log.
    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        if request.uri.queryParameters.get("at_version") != nil {
            let (_, head) = try await owned(workflowID, principal)
            let at = Int64(try Reply.integer(request, "at_version", default: 1, range: 1...Int(Int32.max)))
            guard at <= head else {
                throw Problem(.notFound, code: "workflow.version_not_found", detail: "the workflow has no version \(at) (it is at \(head))")
            }
            let (past, version) = try await workflows.load(WorkflowDecider.streamID(workflowID).description, asOf: at)
            return try Reply.json(WorkflowDTO.Workflow(workflowID, past, version: version, atVersion: version), status: .ok, context: context)
        }
        let view = try await view(workflowID, principal, request)
        if let view {
            return try Reply.json(WorkflowDTO.Workflow(view), status: .ok, version: view.version, context: context)
        }
        // Written but not yet in the read model: the stream has it.
        let (state, version) = try await owned(workflowID, principal)
        return try Reply.json(WorkflowDTO.Workflow(workflowID, state, version: version), status: .ok, version: version, context: context)
    }

    /// A batched edit for clients without the socket. `base_version` (or `If-Match`) is the
    /// version the client's graph is at: a stale base is rebased when it commutes, else the edit
    /// is refused with the rule that refused it. With `If-Match` the version must be the head.
    /// `op_id` makes a retry safe: it gets the first answer and appends nothing.
    @Sendable func edit(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let ifMatch = try Reply.ifMatch(request)
        _ = try await owned(workflowID, principal)
        let body = try await request.decode(as: WorkflowDTO.Edit.self, context: context)
        guard let base = body.baseVersion ?? ifMatch else {
            throw Problem(
                .preconditionRequired, code: "workflow.base_required",
                detail: "say which version your graph is at: base_version in the body, or the ETag in If-Match")
        }
        var command = try CommandContext.from(request, context: context)
        let opID = body.opID ?? "http-\(command.commandID)"
        // The operation is the command: a retry with the same op_id derives the same event ids.
        command.commandID = "workflow/\(WorkflowDTO.id(workflowID))/op/\(opID)"
        let result = try await workflows.handle(
            .apply(.init(opID: opID, baseVersion: base, ops: body.ops.map(\.op), now: command.now)), on: WorkflowDecider.streamID(workflowID),
            context: command, ifMatch: ifMatch)
        await doorbell?.ring(commit: result.append)
        let ack = result.state.acks[opID] ?? WorkflowAck(opID: opID, status: .applied, version: result.append?.streamVersion ?? result.streamVersion)
        if ack.status == .rejected { throw Self.refusal(ack, version: result.streamVersion) }
        return try Reply.json(
            WorkflowDTO.Ack(ack), status: .ok, version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    /// A rejected operation as a problem: its code names the rule (`workflow.target_deleted`, ...).
    static func refusal(_ ack: WorkflowAck, version: Int64) -> Problem {
        var extensions: [String: JSONValue] = ["op_id": .string(ack.opID), "reason": .string(ack.reason ?? ""), "version": .number(Double(ack.version))]
        if let conflict = ack.conflictVersion { extensions["conflict_version"] = .number(Double(conflict)) }
        return Problem(
            .conflict, code: "workflow.\(ack.reason ?? "rejected")", detail: ack.detail ?? "the operation was rejected", headers: [.eTag: "\"\(version)\""],
            extensions: extensions)
    }

    @Sendable func delete(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let ifMatch = try Reply.ifMatch(request)
        _ = try await owned(workflowID, principal)
        let command = try CommandContext.from(request, context: context)
        let result = try await workflows.handle(.delete(now: command.now), on: WorkflowDecider.streamID(workflowID), context: command, ifMatch: ifMatch)
        await doorbell?.ring(commit: result.append)
        var headers: HTTPFields = [.eTag: "\"\(result.streamVersion)\""]
        if let position = result.append?.checkpoint { headers[Reply.positionHeader] = Reply.token(position) }
        return Response(status: .noContent, headers: headers)
    }

    /// Blame comes from the read model (it keeps who changed what, per field). A workflow the
    /// read model has not caught up with yet (just created, just edited) is waited for, up to the
    /// read-your-writes timeout, so a client never has to retry its own write's blame.
    @Sendable func blame(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let (_, head) = try await owned(workflowID, principal)
        var view = try await view(workflowID, principal, request)
        if (view?.version ?? 0) < head,
            let last = try await workflows.store.readStream(WorkflowDecider.streamID(workflowID).description, from: head, direction: .forward, limit: 1).first
        {
            _ = try await queries.waitForWorkflows(last.checkpoint, timeout: settings.readYourWritesTimeout)
            view = try await queries.workflow(workflowID)
        }
        guard let view else {
            throw Problem(
                .serviceUnavailable, code: "workflow.read_model_behind", detail: "the workflow is not in the read model yet: retry shortly",
                headers: [.retryAfter: "1"])
        }
        return try Reply.json(WorkflowDTO.BlameReport(view), status: .ok, version: view.version, context: context)
    }

    // MARK: Versions

    @Sendable func publish(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        _ = try await owned(workflowID, principal)
        let body = try await request.decode(as: WorkflowDTO.Publish.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let result = try await workflows.handle(
            .publish(draftVersion: body.draftVersion, contentHash: body.contentHash, note: body.note, now: command.now),
            on: WorkflowDecider.streamID(workflowID), context: command)
        await doorbell?.ring(commit: result.append)
        guard let number = result.state.published.lastIndex(where: { $0.draftVersion == body.draftVersion && $0.contentHash == body.contentHash })
        else { throw Self.notFound }
        var dto = WorkflowDTO.Version(number: number + 1, result.state.published[number], deployed: result.state.deployed)
        dto.note = body.note
        dto.publishedBy = principal.userID
        return try Reply.json(
            dto, status: .created, location: "\(Self.location(workflowID))/versions/\(number + 1)", version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    @Sendable func listVersions(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, _) = try await owned(workflowID, principal)
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForWorkflows)
        let views = try await queries.versions(of: workflowID)
        return try Reply.json(WorkflowDTO.Versions(items: views.map { WorkflowDTO.Version($0, deployed: state.deployed) }), status: .ok, context: context)
    }

    @Sendable func showVersion(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, _) = try await owned(workflowID, principal)
        let number = try Self.versionNumber(context, state)
        var dto = WorkflowDTO.Version(number: number, state.published[number - 1], deployed: state.deployed)
        if let view = try await queries.versions(of: workflowID).first(where: { $0.version == number }) {
            dto.note = view.note
            dto.publishedBy = view.publishedBy
            dto.publishedAt = WorkflowDTO.iso(view.publishedAt)
        }
        return try Reply.json(dto, status: .ok, context: context)
    }

    /// Makes an older version the draft again, as a new event: nothing is destroyed, and the
    /// draft before the restore stays readable with `?at_version=`.
    @Sendable func restore(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let ifMatch = try Reply.ifMatch(request)
        let (state, _) = try await owned(workflowID, principal)
        let number = try Self.versionNumber(context, state)
        let command = try CommandContext.from(request, context: context)
        let result = try await workflows.handle(
            .restore(version: number, now: command.now), on: WorkflowDecider.streamID(workflowID), context: command, ifMatch: ifMatch)
        await doorbell?.ring(commit: result.append)
        return try Reply.json(
            WorkflowDTO.Workflow(workflowID, result.state, version: result.streamVersion), status: .ok, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    @Sendable func deploy(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, _) = try await owned(workflowID, principal)
        let number = try Self.versionNumber(context, state)
        let command = try CommandContext.from(request, context: context)
        let result = try await workflows.handle(.deploy(version: number, now: command.now), on: WorkflowDecider.streamID(workflowID), context: command)
        await doorbell?.ring(commit: result.append)
        return try Reply.json(
            WorkflowDTO.Deployed(deployedVersion: number, contentHash: state.published[number - 1].contentHash), status: .ok, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    /// `?from=` and `?to=`: a published version's number or `draft` (the default `to`).
    @Sendable func diff(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let workflowID = try Reply.pathID(context, "id", missing: Self.notFound)
        let (state, _) = try await owned(workflowID, principal)
        let query = request.uri.queryParameters
        func side(_ name: String, default fallback: String?) throws -> (String, WorkflowGraph) {
            guard let text = query.get(name).map({ String($0) }) ?? fallback else {
                throw Problem(.badRequest, code: "request.invalid_query", detail: "\(name) is required: a published version's number or 'draft'")
            }
            if text == "draft" { return (text, state.graph) }
            guard let number = Int(text) else {
                throw Problem(.badRequest, code: "request.invalid_query", detail: "\(name) must be a published version's number or 'draft'")
            }
            guard number >= 1, number <= state.published.count else {
                throw Problem(
                    .notFound, code: "workflow.version_not_found", detail: "the workflow has no published version \(number) (it has \(state.published.count))")
            }
            return (text, state.published[number - 1].graph)
        }
        let (fromName, old) = try side("from", default: nil)
        let (toName, new) = try side("to", default: "draft")
        return try Reply.json(WorkflowDTO.Diff(from: fromName, to: toName, WorkflowDiff(from: old, to: new)), status: .ok, context: context)
    }

    // MARK: Helpers

    static func versionNumber(_ context: ChronicleRequestContext, _ state: WorkflowDecider.State) throws -> Int {
        guard let text = context.parameters.get("version"), let number = Int(text), number >= 1, number <= state.published.count else {
            throw Problem(
                .notFound, code: "workflow.version_not_found", detail: "the workflow has no such published version (it has \(state.published.count))")
        }
        return number
    }

    /// The workflow from its stream, if the principal may use it; 404 otherwise (absent, deleted
    /// or another owner's).
    func owned(_ id: UUID, _ principal: Principal) async throws -> (WorkflowDecider.State, Int64) {
        let (state, version) = try await workflows.load(WorkflowDecider.streamID(id).description)
        guard state.workflowID != nil, !state.deleted, let owner = state.ownerID, principal.mayAccess(owner: owner) else { throw Self.notFound }
        return (state, version)
    }

    /// The draft from the read model, if the principal may see it; nil when the read model does
    /// not have it (yet), or has not reached the write the request waits for (`X-Chronicle-After`:
    /// the caller answers from the stream instead of serving what it wrote over); 404 when it is
    /// another owner's.
    func view(_ id: UUID, _ principal: Principal, _ request: Request) async throws -> WorkflowView? {
        guard try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForWorkflows) else { return nil }
        guard let view = try await queries.workflow(id) else { return nil }
        guard principal.mayAccess(owner: view.ownerID) else { throw Self.notFound }
        return view
    }
}

extension WorkflowsController {
    /// Its routes, under `/api/v1/workflows`.
    public var mount: RouteMount { RouteMount("workflows", add: { addRoutes(to: $0) }) }
}
