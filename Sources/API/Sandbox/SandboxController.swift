import Commands
import Events
import Foundation
import Hummingbird
import Projections

/// `POST /sandbox/execute`, `GET /sandbox/executions/{id}` and `GET /sandbox/health`. Runs are
/// their owner's: another user (not an admin) gets 404, as if the run did not exist.
public struct SandboxController: Sendable {
    public struct Settings: Sendable {
        /// The limits of a run; a request chooses only its wall time, up to `maxTimeoutSeconds`.
        public var limits: SandboxLimits
        public var maxTimeoutSeconds: Int
        public var maxCodeBytes: Int
        public var maxAttempts: Int
        public var readYourWritesTimeout: Duration

        public init(
            limits: SandboxLimits = .init(), maxTimeoutSeconds: Int = 30, maxCodeBytes: Int = 64 << 10, maxAttempts: Int = 2,
            readYourWritesTimeout: Duration = .seconds(5)
        ) {
            self.limits = limits
            self.maxTimeoutSeconds = maxTimeoutSeconds
            self.maxCodeBytes = maxCodeBytes
            self.maxAttempts = maxAttempts
            self.readYourWritesTimeout = readYourWritesTimeout
        }
    }

    let executions: CommandHandler<CodeExecutionDecider>
    let queries: any SandboxQueries
    /// The runner of this process, for its pool state; nil where this process runs no workers.
    let runner: (any SandboxRunner)?
    /// The host's CPU and memory, for the health route.
    let host: any HostProbe
    let settings: Settings

    public init(
        store: any EventStore, queries: any SandboxQueries, runner: (any SandboxRunner)?, host: any HostProbe, settings: Settings = .init()
    ) {
        executions = CommandHandler(store: store)
        self.queries = queries
        self.runner = runner
        self.host = host
        self.settings = settings
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post("execute", use: execute)
        group.get("executions/:id", use: show)
        group.get("health", use: health)
    }

    static let executionNotFound = Problem(.notFound, code: "sandbox.execution_not_found", detail: "no such execution")

    @Sendable func execute(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let body = try await request.decode(as: SandboxDTO.Execute.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let executionID = command.derivedID("code-execution")
        let result = try await executions.handle(
            .request(RequestCodeExecution(
                executionID: executionID, ownerID: principal.userID, language: body.language ?? "python", code: body.code,
                limits: settings.limits.with(timeoutSeconds: body.timeoutSeconds ?? settings.limits.timeoutSeconds),
                maxTimeoutSeconds: settings.maxTimeoutSeconds, maxCodeBytes: settings.maxCodeBytes, maxAttempts: settings.maxAttempts,
                now: command.now)),
            on: CodeExecutionDecider.streamID(executionID), context: command)
        return try Reply.json(
            SandboxDTO.Accepted(executionID: executionID.uuidString.lowercased(), status: result.state.status.rawValue), status: .accepted,
            location: "/api/v1/sandbox/executions/\(executionID.uuidString.lowercased())", version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try Reply.pathID(context, "id", missing: Self.executionNotFound)
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForExecutions)
        let execution: SandboxDTO.Execution
        let version: Int64
        if let view = try await queries.execution(id) {
            guard principal.mayAccess(owner: view.ownerID) else { throw Self.executionNotFound }
            execution = SandboxDTO.Execution(view)
            version = view.version
        } else {
            // Accepted but not yet in the read model: its stream says it exists, so a client polling
            // right after the 202 never sees a 404 for its own run. It is shown as it was when
            // requested (pending, version 1), the state the read model will pass through: the
            // stream may already say "completed", but the outcome is the read model's to give, and
            // "completed" without it would end a client's polling with nothing to read.
            let (state, _) = try await executions.load(CodeExecutionDecider.streamID(id).description)
            guard let requested = state.request, principal.mayAccess(owner: requested.ownerID) else { throw Self.executionNotFound }
            execution = SandboxDTO.Execution(requested)
            version = 1
        }
        return try Reply.json(execution, status: .ok, version: version, context: context)
    }

    @Sendable func health(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        _ = try context.requirePrincipal()
        let pool = await runner?.health()
        return try Reply.json(SandboxDTO.Health(pool: pool, host: host.usage()), status: .ok, context: context)
    }
}

extension SandboxController {
    /// Its routes, under `/api/v1/sandbox`.
    public var mount: RouteMount { RouteMount("sandbox", add: { addRoutes(to: $0) }) }
}
