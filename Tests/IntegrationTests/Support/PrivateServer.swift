import Foundation

/// A throwaway Redis or RabbitMQ of a test's own, started and stopped through the same dev scripts
/// as the shared ones, on free ports and in a temporary data folder, so a test can stop it without
/// disturbing the tests that share the others.
struct PrivateServer {
    let service: String
    let environment: [String: String]
    let data: URL

    static func make(_ service: String) throws -> PrivateServer {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-\(service)-\(UUID().uuidString.prefix(8))")
        var env = ProcessInfo.processInfo.environment
        env["CHRONICLE_DATA"] = data.path
        env["CHRONICLE_REDIS_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_AMQP_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_AMQP_DIST_PORT"] = String(try CLIProcess.freePort())
        env["CHRONICLE_EPMD_PORT"] = String(try CLIProcess.freePort())
        return PrivateServer(service: service, environment: env, data: data)
    }

    var amqpURL: String { "amqp://guest:guest@127.0.0.1:\(environment["CHRONICLE_AMQP_PORT"]!)/%2f" }
    var redisURL: String { "redis://127.0.0.1:\(environment["CHRONICLE_REDIS_PORT"]!)/0" }

    func start() throws { try script("start.sh") }
    func stop() throws { try script("stop.sh") }

    func destroy() {
        try? stop()
        try? FileManager.default.removeItem(at: data)
    }

    /// Runs a dev script and waits for it alone (posix_spawn and waitpid): Foundation's Process
    /// would also wait for the daemons the script leaves running.
    private func script(_ name: String) throws {
        let path = TestServers.root.appendingPathComponent("eventstore/dev/\(name)").path
        let arguments = ["/bin/bash", path, service]
        let environment = self.environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        guard posix_spawn(&pid, "/bin/bash", &actions, nil, argv, envp) == 0 else {
            throw TestServers.NotConfigured(variable: "spawning \(name)")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard status == 0 else {
            throw TestServers.NotConfigured(variable: "\(name) \(service) exited with status \(status)")
        }
    }
}
