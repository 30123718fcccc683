import CLISupport
import Events
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The live workflow socket on two `chronicle serve` processes sharing one database and Redis:
/// operations committed per second by 8 clients editing one workflow, and their ack latency,
/// beside the same sockets' bare round trip (`ping` → `pong`: the server's WebSocket path with no
/// store); then the fan-out latency from one client's operation to another client's receipt of
/// its event, on the same process and across the two (the Redis doorbell).
struct WorkflowLiveBenchmark {
    let databaseURL: String
    let report: BenchReport
    let seconds: Int
    let clients = 8

    func run() async throws {
        var http = AgentAPIBenchmark(databaseURL: databaseURL, report: report, seconds: seconds, connections: clients, appendCeiling: 1)
        var env = AgentAPIBenchmark.serverEnvironment()
        // The per-session limit would be the figure: lifted for the benchmark's one user.
        env["CHRONICLE_WORKFLOWS_LIVE_OPS_PER_SECOND"] = "100000"
        let binary = try AgentAPIBenchmark.chronicleBinary()
        try AgentAPIBenchmark.createUser("bench-live@localhost", binary: binary, env: env, databaseURL: databaseURL)
        var servers: [Process] = []
        defer {
            for server in servers {
                server.terminate()
                server.waitUntilExit()
            }
        }
        var bases: [String] = []
        for roles in ["api,projectors,relay,workers", "api"] {
            let (server, base) = try AgentAPIBenchmark.startServer(binary: binary, env: env, databaseURL: databaseURL, roles: roles)
            servers.append(server)
            bases.append(base)
        }
        for base in bases { try await http.waitUntilReady(base) }
        let token = try await http.post(
            "\(bases[0])/api/v1/auth/token", body: #"{"username": "bench-live@localhost", "password": "\#(env["CHRONICLE_USER_PASSWORD"]!)"}"#
        )["access_token"] as? String ?? ""
        http.token = token
        let workflow = try await http.post("\(bases[0])/api/v1/workflows", body: #"{"name": "bench"}"#)["id"] as? String ?? ""
        let nodes = (0..<clients).map { #"{"op": "add_node", "node": {"id": "n\#($0)", "type": "agent"}}"# }.joined(separator: ", ")
        _ = try await http.send("PATCH", "\(bases[0])/api/v1/workflows/\(workflow)", body: #"{"op_id": "seed", "base_version": 1, "ops": [\#(nodes)]}"#)
        let url = { (base: String) in base.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/workflows/\(workflow)/live" }

        // Bare round trips and committed operations, 8 sockets on process A.
        let sockets = try await (0..<clients).asyncMap { _ in try await BenchSocket.open(url(bases[0]), token: token) }
        let duration = Duration.seconds(seconds)
        let echo = await Self.load(sockets, for: duration) { socket, _, _ in
            socket.send(#"{"type":"ping"}"#)
            return await socket.wait(for: "pong") != nil
        }
        report.emit("live.echo", echo.perSecond, unit: "round trips/s", echo.extra(clients: clients, seconds: seconds, [
            "what": .string("ping -> pong on the workflow socket, no store: the ceiling of an operation's round trip"),
        ]))
        let ops = await Self.load(sockets, for: duration) { socket, index, sequence in
            let opID = "b\(index):\(sequence)"
            socket.send(
                #"{"type":"ops","op_id":"\#(opID)","base_version":\#(socket.version),"ops":[{"op":"move_node","node":"n\#(index)","position":{"x":\#(sequence % 1000),"y":\#(index)}}]}"#)
            return await socket.wait(for: "ack:\(opID)") != nil
        }
        report.emit("live.ops.committed", ops.perSecond, unit: "operations/s", ops.extra(clients: clients, seconds: seconds, [
            "what": .string("8 clients on one workflow, each a move of its own node awaiting its ack; every session also receives every event"),
            "echo_round_trips_per_s": .number(echo.perSecond.rounded()), "ratio_to_echo": .number((ops.perSecond / echo.perSecond * 100).rounded() / 100),
            "echo_p50_ms": .number(echo.latencies.percentileMs(0.5)), "echo_p99_ms": .number(echo.latencies.percentileMs(0.99)),
        ]))
        for socket in sockets { socket.close() }

        // Fan-out: one sender on A; one receiver on A, one on B.
        let sender = try await BenchSocket.open(url(bases[0]), token: token)
        let near = try await BenchSocket.open(url(bases[0]), token: token)
        let far = try await BenchSocket.open(url(bases[1]), token: token)
        var sameProcess = Latencies()
        var acrossProcesses = Latencies()
        var acked = Latencies()
        let rounds = max(50, min(500, seconds * 60))
        for round in 0..<rounds {
            let opID = "f:\(round)"
            let sent = ContinuousClock.now
            sender.send(#"{"type":"ops","op_id":"\#(opID)","base_version":\#(sender.version),"ops":[{"op":"move_node","node":"n0","position":{"x":\#(round),"y":0}}]}"#)
            async let nearAt = near.wait(for: "event:\(opID)")
            async let farAt = far.wait(for: "event:\(opID)")
            if let at = await sender.wait(for: "ack:\(opID)") { acked.add(at - sent) }
            if let at = await nearAt { sameProcess.add(at - sent) }
            if let at = await farAt { acrossProcesses.add(at - sent) }
        }
        emitFanOut("live.ack.one_client", acked, "one client's operation until its ack, nobody else writing (the command path alone)")
        emitFanOut("live.fanout.same_process", sameProcess, "an operation sent on process A until another client on A has its event")
        emitFanOut(
            "live.fanout.across_processes", acrossProcesses,
            "an operation sent on process A until a client on process B has its event (Redis doorbell, B's hub reads the log)")
        for socket in [sender, near, far] { socket.close() }
    }

    func emitFanOut(_ metric: String, _ latencies: Latencies, _ what: String) {
        let extra: [String: JSONValue] = [
            "p99_ms": .number(latencies.percentileMs(0.99)), "samples": .number(Double(latencies.samples.count)), "what": .string(what),
        ]
        report.emit(metric, latencies.percentileMs(0.5), unit: "ms p50", extra)
    }

    struct Load {
        var count = 0
        var failed = 0
        var latencies = Latencies()
        var elapsed: Duration = .zero
        var perSecond: Double { Double(count) / max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) }

        func extra(clients: Int, seconds: Int, _ more: [String: JSONValue]) -> [String: JSONValue] {
            var extra: [String: JSONValue] = [
                "p50_ms": .number(latencies.percentileMs(0.5)), "p99_ms": .number(latencies.percentileMs(0.99)), "clients": .number(Double(clients)),
                "seconds": .number(Double(seconds)), "count": .number(Double(count)), "failed": .number(Double(failed)),
            ]
            for (key, value) in more { extra[key] = value }
            return extra
        }
    }

    /// Each socket runs `step` back to back for `duration`; counts and latencies of the steps.
    static func load(
        _ sockets: [BenchSocket], for duration: Duration, _ step: @escaping @Sendable (BenchSocket, Int, Int) async -> Bool
    ) async -> Load {
        let start = ContinuousClock.now
        let end = start.advanced(by: duration)
        var total = Load()
        await withTaskGroup(of: Load.self) { group in
            for (index, socket) in sockets.enumerated() {
                group.addTask {
                    var load = Load()
                    var sequence = 0
                    while ContinuousClock.now < end {
                        sequence += 1
                        let began = ContinuousClock.now
                        if await step(socket, index, sequence) {
                            load.count += 1
                            load.latencies.add(ContinuousClock.now - began)
                        } else {
                            load.failed += 1
                        }
                    }
                    return load
                }
            }
            for await load in group {
                total.count += load.count
                total.failed += load.failed
                total.latencies.samples += load.latencies.samples
            }
        }
        total.elapsed = ContinuousClock.now - start
        return total
    }
}

/// A socket for the benchmark: messages are matched as they arrive (`pong`, `ack:<op_id>`,
/// `event:<op_id>`) and handed to whoever waits for them, with their arrival time.
final class BenchSocket: Sendable {
    let outgoing: AsyncStream<String?>.Continuation
    let state = Mutex<(arrived: [String: ContinuousClock.Instant], waiting: [String: CheckedContinuation<ContinuousClock.Instant?, Never>], version: Int64)>(([:], [:], 0))

    init(_ url: String, token: String, ready: CheckedContinuation<Void, Never>? = nil) {
        let (stream, outgoing) = AsyncStream.makeStream(of: String?.self)
        self.outgoing = outgoing
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        configuration.additionalHeaders = [.secWebSocketProtocol: "chronicle.workflow.v1, bearer.\(token)"]
        Task {
            _ = try? await WebSocketClient.connect(url: url, configuration: configuration, logger: Logger(label: "bench-live")) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 24) {
                            if case .text(let text) = message { self.arrived(text) }
                        }
                    }
                    group.addTask {
                        for await text in stream {
                            guard let text else { break }
                            try await outbound.writeTextMessage(text)
                        }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
            self.closed()
        }
    }

    /// Connected, said hello and received its snapshot.
    static func open(_ url: String, token: String) async throws -> BenchSocket {
        let socket = BenchSocket(url, token: token)
        socket.send(#"{"type":"hello","last_seen_version":0}"#)
        guard await socket.wait(for: "snapshot") != nil else { throw CLIError("no snapshot from \(url)") }
        return socket
    }

    /// The last stream version this socket heard of (the base of its next operation).
    var version: Int64 { state.withLock { $0.version } }

    func send(_ text: String) { outgoing.yield(text) }

    func close() {
        outgoing.yield(nil)
        outgoing.finish()
    }

    /// When the message `key` arrived; nil if the socket closed or 30 s passed.
    func wait(for key: String) async -> ContinuousClock.Instant? {
        let timeout = Task {
            try await Task.sleep(for: .seconds(30))
            self.state.withLock { $0.waiting.removeValue(forKey: key) }?.resume(returning: nil)
        }
        defer { timeout.cancel() }
        return await withCheckedContinuation { continuation in
            let at = state.withLock { state -> ContinuousClock.Instant? in
                if let at = state.arrived.removeValue(forKey: key) { return at }
                state.waiting[key] = continuation
                return nil
            }
            if let at { continuation.resume(returning: at) }
        }
    }

    func arrived(_ text: String) {
        let now = ContinuousClock.now
        guard let message = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], let type = message["type"] as? String else { return }
        let key: String
        switch type {
        case "ack", "event": key = "\(type):\(message["op_id"] as? String ?? "")"
        default: key = type
        }
        let version = (message["version"] as? NSNumber)?.int64Value ?? 0
        let waiter = state.withLock { state -> CheckedContinuation<ContinuousClock.Instant?, Never>? in
            state.version = max(state.version, version)
            if let waiter = state.waiting.removeValue(forKey: key) { return waiter }
            // Kept for a waiter that has not registered yet (an event may beat its ack).
            state.arrived[key] = now
            return nil
        }
        waiter?.resume(returning: now)
    }

    func closed() {
        let waiters = state.withLock { state in
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }
}

extension Range where Bound == Int {
    func asyncMap<T>(_ transform: (Int) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for value in self { results.append(try await transform(value)) }
        return results
    }
}
