import Commands
import Events
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Projections
import Synchronization

/// Real-time editing of one workflow over a WebSocket (`GET /api/v1/workflows/{id}/live`).
///
/// The event store orders everything: an `ops` message is the same command as `PATCH` (applied,
/// rebased or rejected, acknowledged with its version), and what a session sends as `event` is
/// read from the log in stream order with no gap. After each commit the process rings the
/// doorbell with the stream and version; every process then reads the new events from the
/// stream once for its sessions of that workflow. A lost ring costs latency only: the process's
/// push hub, which follows the whole log, delivers them too. Presence lives in the presence store
/// with a TTL, refreshed by a heartbeat, and travels between processes on the doorbell.
public final class WorkflowLive: Sendable {
    public struct Settings: Sendable {
        /// Largest message a client may send (bytes).
        public var maxMessageBytes = 256 * 1024
        /// Operation messages per second per session (a bucket of twice this).
        public var opsPerSecond = 20.0
        /// Presence messages per second per session; the excess is dropped.
        public var presencePerSecond = 10.0
        /// Messages a session may have waiting to be written before it is resynced and closed;
        /// presence is dropped first, from half of it.
        public var outboundQueue = 512
        /// A client this far behind gets a snapshot instead of the events.
        public var maxCatchUp: Int64 = 500
        /// How long a presence entry lives without a heartbeat, and the heartbeat's period.
        public var presenceTTL: Duration = .seconds(30)
        public var heartbeat: Duration = .seconds(10)
        /// Time to send `auth` when the upgrade carried no token.
        public var authTimeout: Duration = .seconds(10)

        public init() {}
    }

    let workflows: CommandHandler<WorkflowDecider>
    let hub: EventHub
    let doorbell: (any Doorbell)?
    let presence: (any PresenceStore)?
    let authenticate: @Sendable (String) async throws -> Principal
    let settings: Settings
    let sessions = Mutex<[UUID: [String: LiveSession]]>([:])
    let logger: Logger

    public init(
        workflows: CommandHandler<WorkflowDecider>, hub: EventHub, doorbell: (any Doorbell)?, presence: (any PresenceStore)?,
        authenticate: @escaping @Sendable (String) async throws -> Principal, settings: Settings = .init(), logger: Logger
    ) {
        self.workflows = workflows
        self.hub = hub
        self.doorbell = doorbell
        self.presence = presence
        self.authenticate = authenticate
        self.settings = settings
        self.logger = logger
        doorbell?.onRing { [weak self] payload in self?.heard(payload) }
    }

    static let presencePrefix = "presence "

    /// A ring from any process: a commit to read for the sessions here, or presence to pass on.
    func heard(_ payload: String) {
        if let commit = CommitRing.parse(payload) {
            // Sessions here that have not sent that version read it from the stream now, rather
            // than when the hub's ordered read of the log gets there.
            let prefix = "\(WorkflowDecider.category)-"
            guard commit.stream.hasPrefix(prefix), let workflowID = UUID(uuidString: String(commit.stream.dropFirst(prefix.count))) else { return }
            rung(workflowID, version: commit.version)
            return
        }
        guard payload.hasPrefix(Self.presencePrefix) else { return }
        let body = payload.dropFirst(Self.presencePrefix.count)
        guard let space = body.firstIndex(of: " "), let workflowID = UUID(uuidString: String(body[..<space])) else { return }
        let message = String(body[body.index(after: space)...])
        let local = sessions.withLock { $0[workflowID].map { Array($0.values) } ?? [] }
        for session in local { session.sendPresence(message) }
    }

    /// The tails of the workflows with sessions here: one stream read per commit for all of them.
    let tails = Mutex<[UUID: StreamGate]>([:])

    /// A commit of `version` on a workflow: if a session here has not sent it, one read of the
    /// stream from the oldest such session's version is offered to every session (each takes the
    /// versions it has not sent, in order). The hub remains the path when a ring is lost.
    func rung(_ workflowID: UUID, version: Int64) {
        let behind = sessions.withLock { $0[workflowID].map { Array($0.values) } ?? [] }.filter { $0.following && $0.sentVersion < version }
        guard !behind.isEmpty else { return }
        let gate = tails.withLock { tails in
            if let gate = tails[workflowID] { return gate }
            let gate = StreamGate()
            tails[workflowID] = gate
            return gate
        }
        Task {
            try? await gate.run("tail") {
                let waiting = behind.filter { $0.sentVersion < version }
                guard let from = waiting.map(\.sentVersion).min() else { return }
                let events = try await LiveSession.read(self.workflows, WorkflowDecider.streamID(workflowID).description, after: from, through: .max)
                for session in waiting { await session.offer(events) }
            }
        }
    }

    func register(_ session: LiveSession) {
        sessions.withLock { $0[session.workflowID, default: [:]][session.id] = session }
    }

    func unregister(_ session: LiveSession) {
        let last = sessions.withLock { sessions -> Bool in
            sessions[session.workflowID]?[session.id] = nil
            guard sessions[session.workflowID]?.isEmpty == true else { return false }
            sessions[session.workflowID] = nil
            return true
        }
        if last { tails.withLock { $0[session.workflowID] = nil } }
    }

    /// The routes: the upgrade on the socket router; on the HTTP router, the same path answers a
    /// request that did not upgrade (no token, not the owner's, not a WebSocket) with a problem.
    public func addWebSocketRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.ws(":id/live") { request, context in
            guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { return .dontUpgrade }
            if let principal = context.principal {
                guard try await self.mayOpen(id, principal) else { return .dontUpgrade }
            }
            // A client that offered subprotocols gets the one it speaks (browsers require it).
            let offered = request.headers[.secWebSocketProtocol]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            return .upgrade(offered.contains(Self.subprotocol) ? [.secWebSocketProtocol: Self.subprotocol] : [:])
        } onUpgrade: { inbound, outbound, context in
            guard let id = context.requestContext.parameters.get("id").flatMap(UUID.init(uuidString:)) else { return }
            let session = LiveSession(live: self, workflowID: id, principal: context.requestContext.principal, outbound: outbound)
            await session.run(inbound)
        }
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get(":id/live") { request, context -> Response in
            let principal = try context.requirePrincipal()
            guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)), try await self.mayOpen(id, principal) else {
                throw WorkflowsController.notFound
            }
            throw Problem(
                .upgradeRequired, code: "workflow.websocket_required",
                detail: "this is a WebSocket: send an upgrade request (Connection: Upgrade, Upgrade: websocket), the token in the Authorization header, in Sec-WebSocket-Protocol as bearer.<token>, or in a first auth message",
                headers: [.upgrade: "websocket"])
        }
    }

    /// The HTTP side of the socket's path, under `/api/v1/workflows`.
    public var mount: RouteMount { RouteMount("workflows", add: { self.addRoutes(to: $0) }) }
    /// The upgrade, under `/api/v1/workflows`, for the WebSocket router.
    public var webSocketMount: RouteMount { RouteMount("workflows", add: { self.addWebSocketRoutes(to: $0) }) }

    /// The subprotocol a client offers beside `bearer.<token>`.
    public static let subprotocol = "chronicle.workflow.v1"

    func mayOpen(_ id: UUID, _ principal: Principal) async throws -> Bool {
        let (state, _) = try await workflows.load(WorkflowDecider.streamID(id).description)
        guard state.workflowID != nil, !state.deleted, let owner = state.ownerID else { return false }
        return principal.mayAccess(owner: owner)
    }
}

/// The messages of the socket, as JSON objects with a `type`.
enum LiveMessage {
    struct Incoming: Decodable {
        var type: String
        var token: String?
        var lastSeenVersion: Int64?
        var opID: String?
        var baseVersion: Int64?
        var ops: [WorkflowDTO.Op]?
        var cursor: JSONValue?
        var selection: [String]?

        enum CodingKeys: String, CodingKey {
            case type, token, ops, cursor, selection
            case lastSeenVersion = "last_seen_version"
            case opID = "op_id"
            case baseVersion = "base_version"
        }
    }

    struct Event: Encodable {
        var type = "event"
        var version: Int64
        var actor: String?
        var opID: String?
        /// `edit` (with `ops`), `rejected`, `published`, `deployed`.
        var kind: String
        var ops: [WorkflowDTO.Op]?

        enum CodingKeys: String, CodingKey {
            case type, version, actor, kind, ops
            case opID = "op_id"
        }
    }

    struct Snapshot: Encodable {
        var type = "snapshot"
        var version: Int64
        var workflow: WorkflowDTO.Workflow
    }

    struct CatchUp: Encodable {
        var type = "catchup"
        var from: Int64
        var version: Int64
        var events: [Event]
    }

    struct Ack: Encodable {
        var type = "ack"
        var ack: WorkflowDTO.Ack

        func encode(to encoder: Encoder) throws {
            try ack.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
        }

        enum CodingKeys: String, CodingKey { case type }
    }

    struct Presence: Encodable {
        var type = "presence"
        var session: String
        var userID: String
        var cursor: JSONValue?
        var selection: [String]?
        var left: Bool?

        enum CodingKeys: String, CodingKey {
            case type, session, cursor, selection, left
            case userID = "user_id"
        }
    }

    struct Notice: Encodable {
        /// `error`, `resync`, `pong`, `welcome`.
        var type: String
        var code: String?
        var detail: String?
        var opID: String?
        var session: String?
        var userID: String?
        var readOnly: Bool?

        enum CodingKeys: String, CodingKey {
            case type, code, detail, session
            case opID = "op_id"
            case userID = "user_id"
            case readOnly = "read_only"
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }()

    static func text(_ value: some Encodable) -> String {
        (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? #"{"type":"error","code":"internal"}"#
    }
}

/// A token bucket: `rate` per second, up to `burst` at once.
struct TokenBucket {
    let rate: Double
    let burst: Double
    var tokens: Double
    var last = ContinuousClock.now

    init(rate: Double) {
        self.rate = rate
        burst = max(1, rate * 2)
        tokens = burst
    }

    mutating func take() -> Bool {
        let now = ContinuousClock.now
        let elapsed = Double((now - last).components.attoseconds) / 1e18 + Double((now - last).components.seconds)
        last = now
        tokens = min(burst, tokens + elapsed * rate)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// One socket. Writes go through a bounded queue drained by one writer task, so a slow client
/// never holds up the hub or another session.
final class LiveSession: Sendable {
    enum Outgoing: Sendable {
        case message(String, presence: Bool)
        case close
    }

    let live: WorkflowLive
    let workflowID: UUID
    let id = UUID().uuidString.lowercased()
    let outbound: WebSocketOutboundWriter
    let queue: AsyncStream<Outgoing>
    let queueInput: AsyncStream<Outgoing>.Continuation
    let state = Mutex(State())

    struct State {
        var queued = 0
        var closing = false
        /// The last stream version sent (a snapshot's, a catch-up's or an event's).
        var sent: Int64 = 0
        var principal: Principal?
        var ops = TokenBucket(rate: 20)
        var presence = TokenBucket(rate: 10)
        var lastPresence: String?
        /// Set once the catch-up is sent: from then on events may also come from `offer`.
        var following = false
    }

    /// Every path that sends events (the hub, a ring's read, the idle read) takes its turn here.
    let delivering = StreamGate()

    var sentVersion: Int64 { state.withLock { $0.sent } }
    var following: Bool { state.withLock { $0.following && !$0.closing } }

    /// Events read by the workflow's tail: those after the last sent, if they follow it without a
    /// gap (else this session reads the stream itself).
    func offer(_ events: [RecordedEvent]) async {
        do {
            try await delivering.run("") {
                let sent = sentVersion
                let fresh = events.filter { $0.streamVersion > sent }
                guard let first = fresh.first else { return }
                if first.streamVersion == sent + 1 {
                    try await send(range: fresh, after: sent)
                } else {
                    try await deliver(through: nil)
                }
            }
        } catch {
            live.logger.debug("live session could not take the tail's events", metadata: ["error": "\(error)"])
        }
    }

    init(live: WorkflowLive, workflowID: UUID, principal: Principal?, outbound: WebSocketOutboundWriter) {
        self.live = live
        self.workflowID = workflowID
        self.outbound = outbound
        (queue, queueInput) = AsyncStream.makeStream(of: Outgoing.self)
        state.withLock {
            $0.principal = principal
            $0.ops = TokenBucket(rate: live.settings.opsPerSecond)
            $0.presence = TokenBucket(rate: live.settings.presencePerSecond)
        }
    }

    var streamID: String { WorkflowDecider.streamID(workflowID).description }
    var principal: Principal? { state.withLock { $0.principal } }

    // MARK: Sending

    /// Queues a message; past the bound the session is resynced and closed (presence is dropped
    /// from half the bound). False once closing.
    @discardableResult
    func send(_ text: String, presence: Bool = false) -> Bool {
        let capacity = live.settings.outboundQueue
        let verdict = state.withLock { state -> Int in
            if state.closing { return 0 }
            if presence, state.queued >= capacity / 2 { return 0 }
            if state.queued >= capacity {
                state.closing = true
                return -1
            }
            state.queued += 1
            return 1
        }
        switch verdict {
        case 1:
            queueInput.yield(.message(text, presence: presence))
            return true
        case -1:
            // The resync goes past the bound: it is the last message this session writes.
            queueInput.yield(.message(LiveMessage.text(LiveMessage.Notice(type: "resync", code: "outbound_overflow", detail: "you fell too far behind: reconnect with last_seen_version")), presence: false))
            queueInput.yield(.close)
            queueInput.finish()
            return false
        default:
            return false
        }
    }

    func send(_ value: some Encodable) { send(LiveMessage.text(value)) }

    /// Presence of another session (a session's own comes back on the doorbell: dropped).
    func sendPresence(_ text: String) {
        if text.contains("\"session\":\"\(id)\"") { return }
        send(text, presence: true)
    }

    func error(_ code: String, _ detail: String, opID: String? = nil) {
        send(LiveMessage.Notice(type: "error", code: code, detail: detail, opID: opID))
    }

    func close() {
        let first = state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        if first {
            queueInput.yield(.close)
            queueInput.finish()
        }
    }

    func writer() async {
        for await item in queue {
            switch item {
            case .message(let text, _):
                state.withLock { $0.queued -= 1 }
                do { try await outbound.writeTextMessage(text) } catch { return }
            case .close:
                try? await outbound.close(.normalClosure, reason: nil)
                return
            }
        }
    }

    // MARK: The session

    func run(_ inbound: WebSocketInboundStream) async {
        // The writer drains what is queued (a last error, a resync) before the socket closes; the
        // reader's helpers (following the log, the auth timer) stop with the reader.
        let writer = Task { await self.writer() }
        await withTaskGroup(of: Void.self) { group in
            await self.read(inbound, group: &group)
            self.close()
            group.cancelAll()
        }
        await writer.value
        live.unregister(self)
        if state.withLock({ $0.lastPresence }) != nil { await leave() }
    }

    func read(_ inbound: WebSocketInboundStream, group: inout TaskGroup<Void>) async {
        var iterator = inbound.messages(maxSize: live.settings.maxMessageBytes).makeAsyncIterator()
        var helloed = false
        if principal == nil {
            // No token at the upgrade: the first message must be `auth`, and soon.
            group.addTask {
                try? await Task.sleep(for: self.live.settings.authTimeout)
                if self.principal == nil {
                    self.error("auth.required", "send {\"type\": \"auth\", \"token\": ...} first, or the token at the upgrade")
                    self.close()
                }
            }
            guard await authenticate(try? await iterator.next()) else { return }
        }
        guard let principal else { return }
        live.register(self)
        send(LiveMessage.Notice(type: "welcome", session: id, userID: principal.userID, readOnly: !principal.mayWrite))
        do {
            while let message = try await iterator.next() {
                guard case .text(let text) = message else {
                    error("message.unsupported", "messages are JSON text")
                    continue
                }
                let incoming: LiveMessage.Incoming
                do {
                    incoming = try JSONDecoder().decode(LiveMessage.Incoming.self, from: Data(text.utf8))
                } catch {
                    self.error("message.malformed", "not a message: \(error)")
                    continue
                }
                switch incoming.type {
                case "hello":
                    guard !helloed else {
                        error("message.unexpected", "hello is sent once; reconnect to start over")
                        continue
                    }
                    helloed = true
                    let subscription = live.hub.subscribe(.stream(streamID))
                    let from = max(0, incoming.lastSeenVersion ?? 0)
                    group.addTask { await self.follow(subscription, from: from) }
                case "ops": await apply(incoming)
                case "presence": await presence(incoming)
                case "ping": send(LiveMessage.Notice(type: "pong"))
                case "auth": error("message.unexpected", "already authenticated")
                default: error("message.unknown_type", "type must be hello, ops, presence or ping")
                }
                if state.withLock({ $0.closing }) { return }
            }
        } catch {
            // Too large a message, or the connection went: the session ends.
            self.error("message.too_large", "a message is at most \(live.settings.maxMessageBytes) bytes")
        }
    }

    /// The first message of a session opened without a token: `auth` with a valid token of a
    /// principal who may open this workflow.
    func authenticate(_ first: WebSocketMessage?) async -> Bool {
        guard case .text(let text)? = first, let message = try? JSONDecoder().decode(LiveMessage.Incoming.self, from: Data(text.utf8)),
            message.type == "auth", let token = message.token
        else {
            error("auth.required", "send {\"type\": \"auth\", \"token\": ...} first, or the token at the upgrade")
            return false
        }
        guard let principal = try? await live.authenticate(token) else {
            error("auth.invalid_token", "the token is not valid")
            return false
        }
        guard (try? await live.mayOpen(workflowID, principal)) == true else {
            error("workflow.not_found", "no such workflow")
            return false
        }
        state.withLock { $0.principal = principal }
        return true
    }

    /// The catch-up (events or a snapshot) and then the live events, in stream order with no gap:
    /// the hub subscription is taken before the stream is read, and any version the hub skipped
    /// (a drop, a late join) is read from the stream.
    func follow(_ subscription: HubSubscription, from lastSeen: Int64) async {
        defer { subscription.cancel() }
        do {
            let (state, head) = try await live.workflows.load(streamID)
            if lastSeen > head || head - lastSeen > live.settings.maxCatchUp || lastSeen == 0 {
                send(LiveMessage.Snapshot(version: head, workflow: WorkflowDTO.Workflow(workflowID, state, version: head)))
                self.state.withLock { $0.sent = head }
            } else {
                self.state.withLock { $0.sent = lastSeen }
                try await send(range: try await read(after: lastSeen, through: head), after: lastSeen, always: true)
            }
            self.state.withLock { $0.following = true }
            if let present = try? await live.presence?.entries(WorkflowDTO.id(workflowID)) {
                for (_, message) in present.sorted(by: { $0.key < $1.key }) { sendPresence(message) }
            }
            var current = subscription
            var beat = ContinuousClock.now
            while !Task.isCancelled {
                if ContinuousClock.now - beat >= live.settings.heartbeat {
                    beat = ContinuousClock.now
                    await heartbeat()
                }
                switch try await current.next(timeout: min(live.settings.heartbeat, .seconds(5))) {
                case .message(.event(let recorded)):
                    try await delivering.run("") { try await deliver(through: recorded) }
                case .message(.dropped):
                    current.cancel()
                    current = live.hub.subscribe(.stream(streamID))
                    try await delivering.run("") { try await deliver(through: nil) }
                case .idle:
                    // Nothing heard: read the stream anyway (a hub that lags costs latency only).
                    try await delivering.run("") { try await deliver(through: nil) }
                case .ended: return
                }
                if self.state.withLock({ $0.closing }) { return }
            }
        } catch {
            if !Task.isCancelled { live.logger.warning("live session stops following: the client is asked to resync", metadata: ["error": "\(error)"]) }
            send(LiveMessage.Notice(type: "resync", code: "read_failed", detail: "the log could not be read: reconnect with last_seen_version"))
            close()
        }
    }

    /// Sends every event after the last sent one up to `recorded` (or the stream's head).
    func deliver(through recorded: RecordedEvent?) async throws {
        let sent = state.withLock { $0.sent }
        if let recorded {
            if recorded.streamVersion <= sent { return }
            if recorded.streamVersion == sent + 1 {
                try await emit(recorded)
                return
            }
        }
        try await send(range: try await read(after: sent, through: recorded?.streamVersion ?? .max), after: sent)
    }

    /// Sends the events after `after`: one as an `event`, several as one `catchup` (a hub that
    /// lagged, a drop), or a snapshot when they hold a restore or are more than `maxCatchUp`.
    func send(range events: [RecordedEvent], after: Int64, always: Bool = false) async throws {
        guard let last = events.last else {
            if always { send(LiveMessage.CatchUp(from: after, version: after, events: [])) }
            return
        }
        if events.count == 1, !always { return try await emit(last) }
        let messages = try events.map(message)
        state.withLock { $0.sent = last.streamVersion }
        if messages.contains(where: { $0.kind == "restored" }) || events.count > live.settings.maxCatchUp {
            await snapshot(at: last.streamVersion)
        } else {
            send(LiveMessage.CatchUp(from: after, version: last.streamVersion, events: messages))
        }
        if messages.contains(where: { $0.kind == "deleted" }) { close() }
    }

    /// Sends one event; a restore (the whole graph changed) as a snapshot as of it, a deletion
    /// and then the end of the session.
    func emit(_ recorded: RecordedEvent) async throws {
        let event = try message(recorded)
        state.withLock { $0.sent = recorded.streamVersion }
        switch event.kind {
        case "restored":
            await snapshot(at: recorded.streamVersion)
        case "deleted":
            send(event)
            close()
        default:
            send(event)
        }
    }

    func snapshot(at version: Int64) async {
        guard let (state, head) = try? await live.workflows.load(streamID, asOf: version) else { return }
        send(LiveMessage.Snapshot(version: head, workflow: WorkflowDTO.Workflow(workflowID, state, version: head)))
    }

    /// The events after `version`; a failed read is tried again twice (0.2 s, then 0.4 s later) before
    /// the session gives up and asks the client to resync: a pool that timed out under load, or a
    /// reconnecting database, costs latency, not a reconnection of every client.
    func read(after version: Int64, through last: Int64) async throws -> [RecordedEvent] {
        var pause = Duration.milliseconds(200)
        for _ in 0..<2 {
            do {
                return try await Self.read(live.workflows, streamID, after: version, through: last)
            } catch {
                // A session that ends cancels its reads (the store reports that as unavailable).
                if Task.isCancelled { throw error }
                live.logger.info("live session read failed; trying again", metadata: ["error": "\(error)", "after": "\(version)"])
                try await Task.sleep(for: pause)
                pause *= 2
            }
        }
        return try await Self.read(live.workflows, streamID, after: version, through: last)
    }

    static func read(_ workflows: CommandHandler<WorkflowDecider>, _ streamID: String, after version: Int64, through last: Int64) async throws -> [RecordedEvent] {
        var events: [RecordedEvent] = []
        var cursor = version
        while cursor < last {
            let page = try await workflows.store.readStream(streamID, from: cursor + 1, direction: .forward, limit: 500)
            events += page.filter { $0.streamVersion <= last }
            guard let end = page.last?.streamVersion, page.count == 500, end < last else { break }
            cursor = end
        }
        return events
    }

    func message(_ recorded: RecordedEvent) throws -> LiveMessage.Event {
        let event = try live.workflows.registry.decode(recorded, as: WorkflowEvent.self)
        var message = LiveMessage.Event(version: recorded.streamVersion, actor: recorded.metadata.userID, kind: "edit")
        switch event {
        case .edited(let edit):
            message.opID = edit.operation?.opID
            message.ops = [WorkflowDTO.Op(edit.change)]
        case .operationRejected(let rejected):
            message.kind = "rejected"
            message.opID = rejected.operation.opID
        case .versionPublished: message.kind = "published"
        case .deployed: message.kind = "deployed"
        case .draftRestored: message.kind = "restored"
        case .deleted: message.kind = "deleted"
        case .created: message.kind = "created"
        }
        return message
    }

    // MARK: Operations and presence

    func apply(_ incoming: LiveMessage.Incoming) async {
        guard let principal else { return }
        guard let opID = incoming.opID, let base = incoming.baseVersion, let ops = incoming.ops else {
            error("message.malformed", "ops needs op_id, base_version and ops", opID: incoming.opID)
            return
        }
        guard principal.mayWrite else {
            error("auth.forbidden", "your role may read but not change workflows", opID: opID)
            return
        }
        guard state.withLock({ $0.ops.take() }) else {
            error("rate_limited", "at most \(Int(live.settings.opsPerSecond)) operation messages a second: resend it with the same op_id", opID: opID)
            return
        }
        do {
            let context = CommandContext(
                commandID: "workflow/\(WorkflowDTO.id(workflowID))/op/\(opID)", userID: principal.userID, tenantID: principal.tenantID,
                correlationID: "live/\(id)")
            let result = try await live.workflows.handle(
                .apply(.init(opID: opID, baseVersion: base, ops: ops.map(\.op), now: Date())), on: WorkflowDecider.streamID(workflowID),
                context: context)
            let ack = result.state.acks[opID] ?? WorkflowAck(opID: opID, status: .applied, version: result.append?.streamVersion ?? result.streamVersion)
            send(LiveMessage.Ack(ack: WorkflowDTO.Ack(ack)))
            if let append = result.append, !append.duplicate { live.rung(workflowID, version: append.streamVersion) }
            await live.doorbell?.ring(commit: result.append)
        } catch let error as DomainError {
            self.error(error.code.rawValue, error.message, opID: opID)
        } catch {
            live.logger.warning("live operation failed", metadata: ["error": "\(error)"])
            self.error("workflow.unavailable", "the operation could not be applied now: resend it with the same op_id", opID: opID)
        }
    }

    func presence(_ incoming: LiveMessage.Incoming) async {
        guard let principal, state.withLock({ $0.presence.take() }) else { return }
        let message = LiveMessage.text(LiveMessage.Presence(session: id, userID: principal.userID, cursor: incoming.cursor, selection: incoming.selection))
        guard message.utf8.count <= 4096 else {
            error("presence.too_large", "a presence (cursor and selection) is at most 4 KiB")
            return
        }
        state.withLock { $0.lastPresence = message }
        try? await live.presence?.put(WorkflowDTO.id(workflowID), member: id, value: message, ttl: live.settings.presenceTTL)
        await live.doorbell?.ring("\(WorkflowLive.presencePrefix)\(WorkflowDTO.id(workflowID)) \(message)")
    }

    /// Keeps this session's presence alive in the store while it is open.
    func heartbeat() async {
        guard let message = state.withLock({ $0.lastPresence }) else { return }
        try? await live.presence?.put(WorkflowDTO.id(workflowID), member: id, value: message, ttl: live.settings.presenceTTL)
    }

    func leave() async {
        guard let principal else { return }
        try? await live.presence?.remove(WorkflowDTO.id(workflowID), member: id)
        let message = LiveMessage.text(LiveMessage.Presence(session: id, userID: principal.userID, left: true))
        await live.doorbell?.ring("\(WorkflowLive.presencePrefix)\(WorkflowDTO.id(workflowID)) \(message)")
    }
}
