import Commands
import Events
import Foundation
import Logging
import NIOPosix
import Synchronization
import CSeccomp

#if canImport(Glibc)
import Glibc
#endif

/// Where the isolation runner is and what it may use.
public struct SandboxSettings: Sendable {
    /// The `chronicle-sandbox` helper (built beside `chronicle`).
    public var helper: String
    /// The interpreter, by its full path: a PATH lookup could find a slow shim (pyenv) or
    /// something planted.
    public var python: String
    /// Limits for a run that asks for nothing else; requests change only the wall time.
    public var limits: SandboxLimits
    /// Runs at once in this process.
    public var concurrency: Int
    /// Started runners kept waiting for code (0 turns warm start off).
    public var warm: Int

    public init(helper: String, python: String = "/usr/bin/python3", limits: SandboxLimits = .init(), concurrency: Int = 2, warm: Int = 2) {
        self.helper = helper
        self.python = python
        self.limits = limits
        self.concurrency = max(1, concurrency)
        self.warm = max(0, warm)
    }

    /// The helper beside this process's executable (or beside the test bundle).
    public static func helperBesideExecutable() -> String {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("chronicle-sandbox").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("chronicle-sandbox").path
    }
}

/// The sandbox as a child process per run: `chronicle-sandbox` makes the namespaces, mounts,
/// rlimits and seccomp filter, starts the interpreter and waits for code. A few are started ahead
/// (warm), so a run pays only for its own code, not for namespaces and interpreter start-up.
///
/// Every blocking call (spawn, the pipe reads) runs on a thread pool of the sandbox's own: a
/// thread per concurrent run and per warm runner being started; a finished helper is reaped on
/// a thread of its own. Runners are spawned from the pool's threads: the helper
/// dies with the thread that started it (PR_SET_PDEATHSIG), and these threads live as long as
/// the process, whereas the concurrency pool's may be retired when idle.
public final class ProcessSandboxRunner: SandboxRunner {
    let settings: SandboxSettings
    let logger: Logger
    let threads: NIOThreadPool
    let state = Mutex(PoolState())

    struct PoolState {
        var idle: [Started] = []
        var starting = 0
        var running = 0
        var runs = 0
        var problem: String?
        var cgroup: Bool?
    }

    /// A helper process that has set up its sandbox and waits for a request on `input`.
    struct Started: Sendable {
        var pid: pid_t
        /// Opened while the helper is still our unreaped child, so it names that process only.
        var pidfd: Int32
        var input: Int32
        var output: Int32
        var limits: SandboxLimits

        /// Waits for the helper's exit and reaps it. Through the pidfd, never by pid: if anything
        /// else in the process reaped it first (Foundation's Process does, for the children it
        /// watches), a waitpid(pid) could wait on a reused pid and steal another child's exit.
        func reap() {
            if pidfd >= 0 {
                _ = chronicle_pidfd_reap(pidfd)
                close(pidfd)
            } else {
                var status: Int32 = 0
                while waitpid(pid, &status, WNOHANG) == 0 { usleep(10_000) }
            }
        }
    }

    public init(settings: SandboxSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        signal(SIGPIPE, SIG_IGN)  // writing to a runner that died must give EPIPE, not end the server
        // A thread per run at once, and one per warm runner being started, so starting
        // replacements never makes a run wait for a thread.
        threads = NIOThreadPool(numberOfThreads: settings.concurrency + max(1, settings.warm))
        threads.start()
        refill()
    }

    deinit {
        for runner in state.withLock({ $0.idle }) {
            close(runner.input)
            close(runner.output)
            kill(runner.pid, SIGKILL)
            runner.reap()
        }
        // Not the blocking shutdown: the last reference may be dropped on one of these threads.
        threads.shutdownGracefully { _ in }
    }

    public func run(_ code: String, limits: SandboxLimits) async throws -> SandboxResult {
        let warmLimits = settings.limits
        let taken: Started? = state.withLock { state in
            state.running += 1
            guard limits.with(timeoutSeconds: warmLimits.timeoutSeconds) == warmLimits, !state.idle.isEmpty else { return nil }
            return state.idle.removeFirst()
        }
        defer {
            state.withLock {
                $0.running -= 1
                $0.runs += 1
            }
            // After the run, not during it: starting a runner costs an interpreter's start-up,
            // which on a small machine would slow the run it replaces.
            refill()
        }
        let settings = self.settings
        let result = try await threads.runIfActive {
            let runner = try taken ?? Self.spawn(settings, limits: limits)
            return try Self.serve(runner, code: code, limits: limits)
        }
        state.withLock { $0.cgroup = result.inCgroup }
        return result
    }

    public func health() async -> SandboxHealth {
        state.withLock {
            SandboxHealth(
                warm: $0.idle.count, warmTarget: settings.warm, running: $0.running, concurrency: settings.concurrency, runs: $0.runs,
                problem: $0.problem, cgroup: $0.cgroup)
        }
    }

    /// Starts runners (on the pool's threads) until `warm` are idle or starting.
    func refill() {
        let missing = state.withLock { state -> Int in
            let missing = max(0, settings.warm - state.idle.count - state.starting)
            state.starting += missing
            return missing
        }
        for _ in 0..<missing {
            threads.submit { [weak self] status in
                guard let self else { return }
                var started: Started?
                var problem: String?
                if case .active = status {
                    do { started = try Self.spawn(self.settings, limits: self.settings.limits) } catch { problem = "\(error)" }
                }
                self.state.withLock { state in
                    state.starting -= 1
                    if let started { state.idle.append(started) }
                    state.problem = problem
                }
                if let problem { self.logger.error("the sandbox cannot start a runner", metadata: ["reason": "\(problem)"]) }
            }
        }
    }

    // MARK: The helper process (blocking; on the pool's threads only)

    static func arguments(_ settings: SandboxSettings, _ limits: SandboxLimits) -> [String] {
        [
            settings.helper, "--python=\(settings.python)", "--memory-bytes=\(limits.memoryBytes)", "--cpu-seconds=\(limits.cpuSeconds)",
            "--file-bytes=\(limits.fileBytes)", "--open-files=\(limits.openFiles)", "--processes=\(limits.processes)",
            "--workspace-bytes=\(limits.workspaceBytes)", "--tmp-bytes=\(limits.workspaceBytes)", "--output-bytes=\(limits.outputBytes)",
        ]
    }

    /// posix_spawn with an empty environment, default signal dispositions and an empty mask (a
    /// Swift process blocks and ignores some, and children inherit both), in its own process
    /// group, with only the two pipes as stdin and stdout.
    static func spawn(_ settings: SandboxSettings, limits: SandboxLimits) throws -> Started {
        guard access(settings.helper, X_OK) == 0 else {
            throw SandboxUnavailable("the sandbox helper is missing at \(settings.helper); build it with `swift build`")
        }
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        guard pipe2(&input, O_CLOEXEC) == 0 else { throw SandboxUnavailable("pipe: \(String(cString: strerror(errno)))") }
        guard pipe2(&output, O_CLOEXEC) == 0 else {
            close(input[0])
            close(input[1])
            throw SandboxUnavailable("pipe: \(String(cString: strerror(errno)))")
        }
        defer {
            close(input[0])
            close(output[1])
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let arguments = Self.arguments(settings, limits)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, settings.helper, &actions, &attributes, &argv, &envp)
        guard spawned == 0 else {
            close(input[1])
            close(output[0])
            throw SandboxUnavailable("cannot start the sandbox helper: \(String(cString: strerror(spawned)))")
        }
        let started = Started(pid: pid, pidfd: chronicle_pidfd_open(pid), input: input[1], output: output[0], limits: limits)
        do {
            try awaitReady(started)
        } catch {
            close(started.input)
            close(started.output)
            kill(pid, SIGKILL)
            started.reap()
            throw error
        }
        return started
    }

    /// The helper's first line: `ready` once the interpreter waits for code, or a setup error.
    static func awaitReady(_ runner: Started) throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.last != UInt8(ascii: "\n") {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw SandboxUnavailable("the sandbox helper did not get ready within 10 s") }
            var poller = pollfd(fd: runner.output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left.components.seconds * 1000 + 1, 1000)))
            if ready <= 0 { continue }
            let n = read(runner.output, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { break }
            line.append(byte)
            guard line.count < 4096 else { break }
        }
        if line == Array("ready\n".utf8) { return }
        if let header = try? decoder.decode(Header.self, from: Data(line)), let error = header.error {
            throw SandboxUnavailable("the sandbox could not be set up: \(error)")
        }
        throw SandboxUnavailable("the sandbox helper ended before it was ready")
    }

    /// Hands the code to a started runner and reads its answer: a JSON line that gives the
    /// length of what follows. The helper's own exit (removing its cgroup and namespaces: a few
    /// ms, much longer on a loaded machine) is not waited for here, nor on the pool's threads,
    /// which runs need: a thread of its own reaps it.
    static func serve(_ runner: Started, code: String, limits: SandboxLimits) throws -> SandboxResult {
        defer {
            close(runner.output)
            Thread.detachNewThread { runner.reap() }
        }
        var request = Array("\(limits.timeoutSeconds * 1000)\n".utf8)
        request += Array(code.utf8)
        var written = 0
        request.withUnsafeBytes { bytes in
            while written < bytes.count {
                let n = write(runner.input, bytes.baseAddress! + written, bytes.count - written)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                written += n
            }
        }
        close(runner.input)
        // The helper answers within the wall limit plus its own second of grace; past that
        // (and a margin for a loaded machine) it is killed, and with it the whole run.
        let deadline = ContinuousClock.now.advanced(by: .seconds(limits.timeoutSeconds + 15))
        var answer: [UInt8] = []
        var expected: Int?
        let most = 2 * limits.outputBytes + 4096
        var buffer = [UInt8](repeating: 0, count: 65536)
        while expected.map({ answer.count < $0 }) ?? true {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                kill(runner.pid, SIGKILL)
                throw SandboxUnavailable("the sandbox did not answer in time")
            }
            var poller = pollfd(fd: runner.output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left.components.seconds * 1000 + 1, 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(runner.output, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            answer += buffer[0..<n]
            if answer.count > most {
                kill(runner.pid, SIGKILL)
                throw SandboxUnavailable("the sandbox answered more than its output limit")
            }
            if expected == nil, let newline = answer.firstIndex(of: UInt8(ascii: "\n")) {
                let header = try? decoder.decode(Header.self, from: Data(answer[..<newline]))
                expected = newline + 1 + (header?.stdoutBytes ?? 0) + (header?.stderrBytes ?? 0)
            }
        }
        return try parse(answer, limits: limits)
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    struct Header: Decodable {
        var error: String?
        var exitCode: Int?
        var signal: Int?
        var timedOut: Bool?
        var limit: String?
        var wallUs: Int64?
        var cpuUs: Int64?
        var peakMemoryBytes: Int64?
        var stdoutBytes: Int?
        var stderrBytes: Int?
        var stdoutTotal: Int64?
        var stderrTotal: Int64?
        var cgroup: Bool?
    }

    static func parse(_ answer: [UInt8], limits: SandboxLimits) throws -> SandboxResult {
        guard let newline = answer.firstIndex(of: UInt8(ascii: "\n")) else {
            throw SandboxUnavailable("the sandbox helper ended without an answer")
        }
        guard let header = try? decoder.decode(Header.self, from: Data(answer[..<newline])) else {
            throw SandboxUnavailable("the sandbox helper answered something unreadable")
        }
        if let error = header.error { throw SandboxUnavailable("the sandbox could not be set up: \(error)") }
        let stdoutCount = header.stdoutBytes ?? 0
        let stderrCount = header.stderrBytes ?? 0
        let body = answer[(newline + 1)...]
        guard body.count == stdoutCount + stderrCount else { throw SandboxUnavailable("the sandbox helper's answer was cut short") }
        let stdoutTotal = header.stdoutTotal ?? Int64(stdoutCount)
        let stderrTotal = header.stderrTotal ?? Int64(stderrCount)
        let output = SandboxOutput(
            stdout: text(body.prefix(stdoutCount), total: stdoutTotal), stderr: text(body.suffix(stderrCount), total: stderrTotal),
            stdoutBytes: stdoutTotal, stderrBytes: stderrTotal)
        let ending: SandboxResult.Ending =
            if header.timedOut == true { .timedOut }
            else if let signal = header.signal, signal != 0 { .signalled(signal) }
            else { .exited(header.exitCode ?? -1) }
        let limit = header.limit.flatMap { $0.isEmpty ? nil : $0 }
        return SandboxResult(
            ending: ending, limit: limit, output: output,
            usage: SandboxUsage(
                durationMs: Int((header.wallUs ?? 0) / 1000), cpuMs: Int((header.cpuUs ?? 0) / 1000),
                peakMemoryBytes: header.peakMemoryBytes ?? 0),
            inCgroup: header.cgroup ?? false)
    }

    /// The kept bytes as text (invalid UTF-8 replaced), with a marker when some were dropped.
    static func text(_ bytes: ArraySlice<UInt8>, total: Int64) -> String {
        var text = String(decoding: bytes, as: UTF8.self)
        if total > Int64(bytes.count) {
            text += "\n[output truncated: \(total) bytes written, the first \(bytes.count) kept]"
        }
        return text
    }
}

/// The host's CPU and memory from `/proc`, for `GET /sandbox/health`.
public struct ProcHostProbe: HostProbe {
    public init() {}

    public func usage() -> HostUsage {
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? 0
        var total: Int64 = 0
        var available: Int64 = 0
        for line in ((try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = Int64(parts[1]) else { continue }
            if parts[0] == "MemTotal:" { total = kib * 1024 }
            if parts[0] == "MemAvailable:" { available = kib * 1024 }
        }
        return HostUsage(cpus: ProcessInfo.processInfo.activeProcessorCount, load1: load, memoryTotalBytes: total, memoryAvailableBytes: available)
    }
}
