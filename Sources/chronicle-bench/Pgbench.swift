import Adapters
import Foundation

/// PostgreSQL's own load generator, as the peer beside a figure of ours: the same server, the same
/// rows, the same number of clients, in the same run. Its script is written to a temporary file.
struct Pgbench {
    let settings: PostgresSettings

    static var binary: String {
        let dir = ProcessInfo.processInfo.environment["PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
        return dir + "/pgbench"
    }

    /// Transactions per second (without the initial connection time) of `script` run by `clients`
    /// clients for `seconds`, with prepared statements.
    func tps(script: String, clients: Int, seconds: Int) throws -> Double {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-bench-\(UUID().uuidString).sql")
        try script.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let arguments = [
            Self.binary, "-n", "-M", "prepared", "-c", String(clients), "-j", String(min(clients, 2)), "-T", String(seconds),
            "-f", file.path, "-h", settings.host, "-p", String(settings.port), "-U", settings.username, settings.database,
        ]
        var environment = ProcessInfo.processInfo.environment
        if let password = settings.password { environment["PGPASSWORD"] = password }
        let (status, text, failure) = try Self.spawn(arguments, environment: environment)
        guard status == 0,
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
            let value = Double(line.dropFirst(6).prefix { $0 != " " })
        else { throw BenchFailure("pgbench failed (\(status)): \(failure.prefix(500))\(text.suffix(300))") }
        return value
    }
}

extension Pgbench {
    /// Runs a program to its end with its output in files, its signal mask empty and default
    /// handlers. Foundation's Process passes on this process's blocked signals, and pgbench's
    /// `-T` is a SIGALRM: blocked, it never ended.
    static func spawn(_ arguments: [String], environment: [String: String]) throws -> (Int32, String, String) {
        let dir = FileManager.default.temporaryDirectory
        let out = dir.appendingPathComponent("chronicle-bench-\(UUID().uuidString).out")
        let err = dir.appendingPathComponent("chronicle-bench-\(UUID().uuidString).err")
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw BenchFailure("could not start \(arguments[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let failure = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        return (exit, text, failure)
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
