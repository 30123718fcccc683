import Foundation

/// A throwaway Postgres, Redis or RabbitMQ of a test's own (or all three: `service` is the dev
/// scripts' argument list), started and stopped through the same dev scripts
/// as the shared ones, on free ports and in a temporary data folder, so a test can stop it without
/// disturbing the tests that share the others.
struct PrivateServer {
    let service: String
    let environment: [String: String]
    let data: URL

    static func make(_ service: String) throws -> PrivateServer {
        let name = service.replacingOccurrences(of: " ", with: "-")
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-\(name)-\(UUID().uuidString.prefix(8))")
        var env = ProcessInfo.processInfo.environment
        // The shared virtualenv: a private server needs no Python tools of its own.
        env["CHRONICLE_VENV"] = SchemathesisTests.binary.deletingLastPathComponent().deletingLastPathComponent().path
        // And the shared model files (install.sh would fetch them again into a new data folder).
        if let embedder = env["CHRONICLE_KNOWLEDGE_EMBEDDER_DIR"], !embedder.isEmpty {
            env["CHRONICLE_MODELS"] = URL(fileURLWithPath: embedder).deletingLastPathComponent().path
        }
        env["CHRONICLE_DATA"] = data.path
        env["CHRONICLE_PG_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_REDIS_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_AMQP_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_AMQP_DIST_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_EPMD_PORT"] = String(try CLIProcess.freePort())
        return PrivateServer(service: service, environment: env, data: data)
    }

    var amqpURL: String { "amqp://guest:guest@127.0.0.1:\(environment["CHRONICLE_AMQP_PORT"]!)/%2f" }
    var redisURL: String { "redis://127.0.0.1:\(environment["CHRONICLE_REDIS_PORT"]!)/0" }
    var postgresURL: String { "postgres://chronicle@127.0.0.1:\(environment["CHRONICLE_PG_PORT"]!)/chronicle" }

    func start() async throws { try await script("start.sh") }
    func stop() async throws { try await script("stop.sh") }
    /// Starts or stops one of the services this server runs (for the fault suite).
    func start(_ one: String) async throws { try await script("start.sh", [one]) }
    func stop(_ one: String) async throws { try await script("stop.sh", [one]) }

    /// Makes one, starts it, runs `body`, then stops it and deletes its data, whatever happened.
    static func with<T>(_ service: String, _ body: (PrivateServer) async throws -> T) async throws -> T {
        let server = try make(service)
        let result: Result<T, any Error>
        do {
            try await server.start()
            result = .success(try await body(server))
        } catch {
            result = .failure(error)
        }
        try? await server.stop()
        try? FileManager.default.removeItem(at: server.data)
        return try result.get()
    }

    /// Runs a dev script and waits for it alone (posix_spawn and waitpid): Foundation's Process
    /// would also wait for the daemons the script leaves running. Starting RabbitMQ takes 10-60 s,
    /// so the wait is a poll that gives its thread back meanwhile.
    private func script(_ name: String, _ services: [String]? = nil) async throws {
        let services = services ?? service.split(separator: " ").map(String.init)
        try await Watchdog.step("\(name) \(services.joined(separator: " ")) (private, in \(data.path))") { try await waitForScript(name, services) }
    }

    private func waitForScript(_ name: String, _ services: [String]) async throws {
        let pid = try spawn(name, services)
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped == -1 && errno != EINTR { throw TestServers.NotConfigured(variable: "waiting for \(name): errno \(errno)") }
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard status == 0 else {
            let said = (try? String(contentsOf: data.appendingPathComponent("\(name).err"), encoding: .utf8)) ?? ""
            let last = said.split(separator: "\n").suffix(3).joined(separator: " / ")
            throw TestServers.NotConfigured(variable: "\(name) \(services.joined(separator: " ")) exited with status \(status): \(last)")
        }
    }

    private func spawn(_ name: String, _ services: [String]) throws -> pid_t {
        let path = TestServers.root.appendingPathComponent("eventstore/dev/\(name)").path
        let arguments = ["/bin/bash", path] + services
        let environment = self.environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The script's own words go to a file of its data folder, so a failure can say why.
        try? FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, data.appendingPathComponent("\(name).err").path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        guard posix_spawn(&pid, "/bin/bash", &actions, nil, argv, envp) == 0 else {
            throw TestServers.NotConfigured(variable: "spawning \(name)")
        }
        return pid
    }
}
