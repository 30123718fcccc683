import CLISupport
import Adapters
import Commands
import Events
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The Agents API under load from `wrk` (a second process, on loopback): `POST .../execute`
/// (executions accepted/s; the workers run them meanwhile, on the offline model) and
/// `GET .../executions/{id}` beside the bare `GET /live` of the same server, in the same run.
struct AgentAPIBenchmark {
    let databaseURL: String
    let report: BenchReport
    let seconds: Int
    let connections: Int
    /// The store's one-event append rate with `connections` writers on the same server, measured
    /// just before: the ceiling of a command route.
    let appendCeiling: Double
    var token = ""

    struct WrkResult {
        var requestsPerSecond: Double
        var p50Ms: Double
        var p99Ms: Double
        var requests: Int
        var non2xx: Int
        var socketErrors: Int
    }

    mutating func run() async throws {
        guard let wrk = Self.which("wrk") else { throw CLIError("wrk not found: eventstore/dev/install.sh installs it") }
        // The load generator is one user: an enterprise user (no per-user limit) with the
        // per-endpoint execute limit off, or the figure would be the limiter's 10/min.
        var env = Self.serverEnvironment()
        env["CHRONICLE_RATE_LIMIT_EXECUTE"] = "0"
        let binary = try Self.chronicleBinary()
        try Self.createUser("bench@localhost", binary: binary, env: env, databaseURL: databaseURL)
        let (server, base) = try Self.startServer(binary: binary, env: env, databaseURL: databaseURL)
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        try await waitUntilReady(base)
        token = try await post(
            "\(base)/api/v1/auth/token", body: #"{"username": "bench@localhost", "password": "\#(env["CHRONICLE_USER_PASSWORD"]!)"}"#
        )["access_token"] as? String ?? ""
        let agent = try await post("\(base)/api/v1/agents", body: #"{"name": "bench", "instructions": "Answer briefly."}"#)["id"] as? String ?? ""
        let execution = try await post("\(base)/api/v1/agents/\(agent)/execute", body: #"{"input": "hello"}"#)["execution_id"] as? String ?? ""
        let executionURL = "\(base)/api/v1/agents/\(agent)/executions/\(execution)"
        try await waitUntilCompleted(executionURL)

        let bare = try runWrk(wrk, url: "\(base)/live")
        emit("api.bare.get", bare, route: "GET /live")
        let get = try runWrk(wrk, url: executionURL)
        emit("api.execution.get", get, route: "GET /api/v1/agents/{id}/executions/{exec_id}")
        // A render by label reads its persona's two stream versions (never a cache of where the
        // label points) and renders the parsed template; the bare route is its ceiling. It runs
        // before the execute load, whose queued runs would keep the workers busy under it.
        let seed = try String(decoding: EventCoding.encode(Self.seedPersona), as: UTF8.self)
        let persona = try await send("POST", "\(base)/api/v1/personas", body: seed)["id"] as? String ?? ""
        _ = try await send("PUT", "\(base)/api/v1/personas/\(persona)/labels/production", body: #"{"version": 1}"#)
        let render = try runWrk(wrk, url: "\(base)/api/v1/personas/\(persona)/render?label=production")
        emit("api.persona.render", render, route: "GET /api/v1/personas/{id}/render?label=production", ceiling: bare)
        // A command route with no worker behind it: each request creates an agent (load its empty
        // stream, decide, append), beside the store's own append rate at this concurrency. Before
        // the execute load, whose queued runs would keep the workers busy under it.
        let createScript = try postScript("create", body: #"{"name": "bench", "instructions": "Answer briefly."}"#)
        defer { try? FileManager.default.removeItem(at: createScript) }
        let creates = try runWrk(wrk, url: "\(base)/api/v1/agents", script: createScript.path)
        emit("api.agent.create", creates, route: "POST /api/v1/agents")
        report.emit("api.agent.create.vs_append", creates.requestsPerSecond / appendCeiling, unit: "ratio", [
            "append_events_per_s": .number(appendCeiling.rounded()), "writers": .number(Double(connections)),
        ])
        let script = try postScript("execute", body: #"{"input": "What is 2+2?"}"#)
        defer { try? FileManager.default.removeItem(at: script) }
        let execute = try runWrk(wrk, url: "\(base)/api/v1/agents/\(agent)/execute", script: script.path)
        emit("api.execute.post", execute, route: "POST /api/v1/agents/{id}/execute")

        // The kernel's high-water mark of the server's resident memory over the whole run.
        if let peak = Self.peakRSS(of: server.processIdentifier) {
            report.emit("api.server.peak_rss", Double(peak) / 1024, unit: "MiB", ["source": .string("VmHWM of /proc/<pid>/status")])
        }

    }

    /// The production binary, built beside this one.
    static func chronicleBinary() throws -> URL {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("chronicle")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw CLIError("\(binary.path) not found: build the chronicle product first") }
        return binary
    }

    /// The environment of a benchmark's server: no model service, quiet logs, and a password for
    /// its one user (`CHRONICLE_USER_PASSWORD`).
    static func serverEnvironment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CHRONICLE_LLM_BASE_URL"] = nil
        env["CHRONICLE_LOG_LEVEL"] = "error"
        env["CHRONICLE_USER_PASSWORD"] = "bench-password-\(UUID().uuidString)"
        return env
    }

    /// An enterprise user (no per-user limit) with the environment's password.
    static func createUser(_ email: String, binary: URL, env: [String: String], databaseURL: String) throws {
        let create = Process()
        create.executableURL = binary
        create.arguments = ["users", "create", "--email", email, "--tier", "enterprise", "--database-url", databaseURL, "--if-missing"]
        create.environment = env
        create.standardOutput = FileHandle.nullDevice
        try create.run()
        create.waitUntilExit()
        guard create.terminationStatus == 0 else { throw CLIError("could not create the benchmark's user") }
    }

    /// `chronicle serve` on a free loopback port; its base URL.
    static func startServer(binary: URL, env: [String: String], databaseURL: String, roles: String? = nil) throws -> (Process, String) {
        let port = try freePort()
        let server = Process()
        server.executableURL = binary
        server.arguments = ["serve", "--port", "\(port)", "--database-url", databaseURL] + (roles.map { ["--roles", $0] } ?? [])
        server.environment = env
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        return (server, "http://127.0.0.1:\(port)")
    }

    /// A wrk script that POSTs `body` (JSON, no single quotes) with the benchmark's token.
    func postScript(_ name: String, body: String) throws -> URL {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-bench-\(name)-\(getpid()).lua")
        try """
            wrk.method = "POST"
            wrk.body = '\(body)'
            wrk.headers["Content-Type"] = "application/json"
            wrk.headers["Authorization"] = "Bearer \(token)"
            """.write(to: script, atomically: true, encoding: .utf8)
        return script
    }

    /// VmHWM (peak resident set) in KiB.
    static func peakRSS(of pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }

    /// The seeds' example persona as a request body.
    static var seedPersona: JSONValue {
        let seed = PersonaDefinition.seedExample
        return [
            "name": .string(seed.name), "role": .string(seed.role),
            "personality": ["tone": .string(seed.personality.tone), "traits": .array(seed.personality.traits.map(JSONValue.string)), "style": .string(seed.personality.style)],
            "few_shot_examples": .array(seed.fewShotExamples.map { ["user_input": .string($0.userInput), "assistant_response": .string($0.assistantResponse)] }),
            "instructions": .string(seed.instructions), "template": .string(seed.template),
        ]
    }

    func emit(_ metric: String, _ result: WrkResult, route: String, ceiling: WrkResult? = nil) {
        var extra: [String: JSONValue] = [
            "route": .string(route), "p50_ms": .number(result.p50Ms), "p99_ms": .number(result.p99Ms),
            "requests": .number(Double(result.requests)), "non_2xx": .number(Double(result.non2xx)),
            "socket_errors": .number(Double(result.socketErrors)), "connections": .number(Double(connections)),
            "seconds": .number(Double(seconds)), "load_generator": .string("wrk, 2 threads, same machine"),
            "auth": .string("bearer JWT, enterprise user, execute limit off"),
        ]
        if let ceiling {
            extra["ceiling_requests_per_s"] = .number(ceiling.requestsPerSecond.rounded())
            extra["ratio_to_ceiling"] = .number((result.requestsPerSecond / ceiling.requestsPerSecond * 100).rounded() / 100)
        }
        report.emit(metric, result.requestsPerSecond, unit: "requests/s", extra)
    }

    func runWrk(_ wrk: String, url: String, script: String? = nil) throws -> WrkResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: wrk)
        let auth = script == nil ? ["-H", "Authorization: Bearer \(token)"] : []
        process.arguments = ["-t2", "-c\(connections)", "-d\(seconds)s", "--latency"] + auth + (script.map { ["-s", $0] } ?? []) + [url]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return try Self.parse(output)
    }

    /// Reads wrk's `--latency` report: `Requests/sec`, the 50 % and 99 % lines, totals, errors.
    static func parse(_ output: String) throws -> WrkResult {
        var result = WrkResult(requestsPerSecond: 0, p50Ms: 0, p99Ms: 0, requests: 0, non2xx: 0, socketErrors: 0)
        for raw in output.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("Requests/sec:"), let value = fields.last.flatMap({ Double($0) }) {
                result.requestsPerSecond = value
            } else if line.hasPrefix("50%"), let value = fields.last.flatMap(milliseconds) {
                result.p50Ms = value
            } else if line.hasPrefix("99%"), let value = fields.last.flatMap(milliseconds) {
                result.p99Ms = value
            } else if line.contains("requests in"), let value = fields.first.flatMap({ Int($0) }) {
                result.requests = value
            } else if line.hasPrefix("Non-2xx"), let value = fields.last.flatMap({ Int($0) }) {
                result.non2xx = value
            } else if line.hasPrefix("Socket errors:") {
                result.socketErrors = line.split(separator: ",").compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
            }
        }
        guard result.requestsPerSecond > 0 else { throw CLIError("could not read wrk's report:\n\(output)") }
        return result
    }

    static func milliseconds(_ text: Substring) -> Double? {
        let units: [(String, Double)] = [("us", 0.001), ("ms", 1), ("s", 1000), ("m", 60_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)) { return value * factor }
        }
        return nil
    }

    func waitUntilReady(_ base: String) async throws {
        for _ in 0..<600 {
            if let (_, response) = try? await URLSession.shared.data(from: URL(string: "\(base)/ready")!),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("the benchmark's server did not become ready")
    }

    func waitUntilCompleted(_ url: String) async throws {
        var request = URLRequest(url: URL(string: url)!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        for _ in 0..<300 {
            let (data, _) = try await URLSession.shared.data(for: request)
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], object["status"] as? String == "completed" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CLIError("the benchmark's first execution did not complete")
    }

    func post(_ url: String, body: String) async throws -> [String: Any] {
        try await send("POST", url, body: body)
    }

    func send(_ method: String, _ url: String, body: String) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if !token.isEmpty { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, _) = try await URLSession.shared.data(for: request)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw CLIError("unexpected answer from \(url)") }
        return object
    }

    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw CLIError("no free port") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
