import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs the built `chronicle` binary the way a user does.
struct CLIProcess {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stderrLines: [Substring] { stderr.split(separator: "\n") }
    }

    /// The `chronicle` binary beside the test bundle (both are in the build's bin folder).
    static func binary() throws -> URL {
        let testBinary = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        var dir = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("chronicle")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        throw TestServers.NotConfigured(variable: "the chronicle binary (build it: swift build --build-tests)")
    }

    static func environment(_ overrides: [String: String?] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in overrides { env[key] = value }
        return env
    }

    static func run(_ arguments: [String], environment: [String: String] = environment(), timeout: Duration = .seconds(60)) async throws -> Result {
        try await Watchdog.step("chronicle \(arguments.joined(separator: " "))") {
            try await runCapturing(arguments, environment: environment, timeout: timeout)
        }
    }

    private static func runCapturing(_ arguments: [String], environment: [String: String], timeout: Duration) async throws -> Result {
        let process = try start(arguments, environment: environment, capture: true)
        let stdout = process.standardOutput as! Pipe
        let stderr = process.standardError as! Pipe
        async let out = readToEnd(stdout.fileHandleForReading)
        async let err = readToEnd(stderr.fileHandleForReading)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now > deadline { process.terminate() }
            try await Task.sleep(for: .milliseconds(20))
        }
        return Result(
            status: process.terminationStatus, stdout: String(decoding: await out, as: UTF8.self),
            stderr: String(decoding: await err, as: UTF8.self))
    }

    /// Reads `handle` to its end on a thread of its own: a blocking read on one of the concurrency
    /// pool's threads (two on a 2-core machine) stalls every other test while the child runs.
    static func readToEnd(_ handle: FileHandle) async -> Data {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: handle.readDataToEndOfFile()) }.start()
        }
    }

    /// Starts the binary. Unless `capture` (for `run`, which reads both pipes to the end), its
    /// output goes to a log file under the temporary folder: a long-lived server writing into a
    /// pipe nobody reads blocks once the pipe's 64 KiB are full, and stops answering.
    static func start(
        _ arguments: [String], environment: [String: String] = environment(), stdout: FileHandle? = nil, stderr: FileHandle? = nil,
        capture: Bool = false
    ) throws -> Process {
        let process = Process()
        process.executableURL = try binary()
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = TestServers.root
        if capture {
            process.standardOutput = Pipe()
            process.standardError = Pipe()
        } else {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-test-\(UUID().uuidString.prefix(8)).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = stdout ?? handle
            process.standardError = stderr ?? handle
        }
        try process.run()
        return process
    }

    /// Runs `body` with `process`, then stops it (SIGTERM, SIGKILL after `grace`) without blocking
    /// a thread: `waitUntilExit()` holds one of the concurrency pool's few threads, and on a
    /// 2-core machine two of those stall every other test in the process for seconds.
    static func stopping<T>(_ process: Process, grace: Duration = .seconds(30), _ body: () async throws -> T) async throws -> T {
        let result: T
        do { result = try await body() } catch {
            await stop(process, grace: grace)
            throw error
        }
        await stop(process, grace: grace)
        return result
    }

    static func stop(_ process: Process, signal: Int32 = SIGTERM, grace: Duration = .seconds(30)) async {
        guard process.isRunning else { return }
        await Watchdog.step("stopping pid \(process.processIdentifier) (\(process.arguments?.first ?? "")) with signal \(signal)") {
            await stopRunning(process, signal: signal, grace: grace)
        }
    }

    private static func stopRunning(_ process: Process, signal: Int32, grace: Duration) async {
        kill(process.processIdentifier, signal)
        let deadline = ContinuousClock.now.advanced(by: grace)
        while process.isRunning {
            if ContinuousClock.now > deadline { kill(process.processIdentifier, SIGKILL) }
            // Not `try?`: a cancelled task must still wait for the exit, at a bounded pace.
            do { try await Task.sleep(for: .milliseconds(20)) } catch { usleep(20_000) }
        }
    }

    /// A TCP port nothing listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// GET over loopback; nil when nothing answers.
    static func get(_ url: String) async -> (status: Int, body: String)? {
        guard let url = URL(string: url) else { return nil }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        guard let (data, response) = try? await URLSession.shared.data(for: request),
            let http = response as? HTTPURLResponse
        else { return nil }
        return (http.statusCode, String(decoding: data, as: UTF8.self))
    }
}
