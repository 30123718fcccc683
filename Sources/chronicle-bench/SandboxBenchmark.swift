import CLISupport
import Adapters
import Events
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The sandbox's figures: start-to-exit of `print(1)` through the runner (warm, and cold) beside a
/// bare `python3 -c 'print(1)'` of the same interpreter in the same run, and runs per second with
/// every slot busy.
struct SandboxBenchmark {
    let report: BenchReport
    let seconds: Int
    let logger: Logger
    let samples = 200

    func run() async throws {
        let python = ProcessInfo.processInfo.environment["CHRONICLE_SANDBOX_PYTHON"] ?? "/usr/bin/python3"
        let helper = ProcessInfo.processInfo.environment["CHRONICLE_SANDBOX_HELPER"] ?? SandboxSettings.helperBesideExecutable()

        var bare = Latencies()
        for _ in 0..<samples {
            let started = ContinuousClock.now
            try Self.spawnAndWait([python, "-c", "print(1)"])
            bare.add(ContinuousClock.now - started)
        }
        emit("bare", bare, ["command": .string("\(python) -c 'print(1)'")])

        // Warm: a pool of two, given a moment between runs to start the next runner (what a
        // worker that is not saturated sees).
        let warm = ProcessSandboxRunner(settings: SandboxSettings(helper: helper, python: python, concurrency: 1, warm: 2), logger: logger)
        try await Self.waitUntilWarm(warm, count: 2)
        var warmLatencies = Latencies()
        for _ in 0..<samples {
            let started = ContinuousClock.now
            let result = try await warm.run("print(1)", limits: .init())
            warmLatencies.add(ContinuousClock.now - started)
            guard result.output.stdout == "1\n" else { throw CLIError("the sandbox answered \(result.output.stdout.debugDescription)") }
            try await Self.waitUntilWarm(warm, count: 2)
        }
        emit("warm", warmLatencies, [:])

        let cold = ProcessSandboxRunner(settings: SandboxSettings(helper: helper, python: python, concurrency: 1, warm: 0), logger: logger)
        var coldLatencies = Latencies()
        for _ in 0..<samples / 2 {
            let started = ContinuousClock.now
            _ = try await cold.run("print(1)", limits: .init())
            coldLatencies.add(ContinuousClock.now - started)
        }
        emit("cold", coldLatencies, [:])

        // Throughput with every slot busy: the default concurrency and one per core.
        for concurrency in Set([2, ProcessInfo.processInfo.activeProcessorCount, 8]).sorted() {
            let runner = ProcessSandboxRunner(
                settings: SandboxSettings(helper: helper, python: python, concurrency: concurrency, warm: concurrency), logger: logger)
            try await Self.waitUntilWarm(runner, count: concurrency)
            let end = ContinuousClock.now.advanced(by: .seconds(seconds))
            let started = ContinuousClock.now
            let runs = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<concurrency {
                    group.addTask {
                        var count = 0
                        while ContinuousClock.now < end {
                            _ = try await runner.run("print(1)", limits: .init())
                            count += 1
                        }
                        return count
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = ContinuousClock.now - started
            let perSecond = Double(runs) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            report.emit("sandbox.print1.throughput", perSecond, unit: "runs/s", ["concurrency": .number(Double(concurrency)), "runs": .number(Double(runs))])
        }
    }

    func emit(_ variant: String, _ latencies: Latencies, _ extra: [String: JSONValue]) {
        var tags = extra
        tags["variant"] = .string(variant)
        tags["samples"] = .number(Double(latencies.samples.count))
        report.emit("sandbox.print1.start_to_exit.p50", latencies.percentileMs(0.50), unit: "ms", tags)
        report.emit("sandbox.print1.start_to_exit.p95", latencies.percentileMs(0.95), unit: "ms", tags)
    }

    static func waitUntilWarm(_ runner: ProcessSandboxRunner, count: Int) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while await runner.health().warm < count {
            if let problem = await runner.health().problem { throw CLIError("the sandbox cannot start: \(problem)") }
            guard ContinuousClock.now < deadline else { throw CLIError("the sandbox's warm runners did not start within 10 s") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// posix_spawn and waitpid, output to /dev/null: the bare interpreter's start-to-exit.
    static func spawnAndWait(_ arguments: [String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, &argv, &envp)
        guard spawned == 0 else { throw CLIError("cannot start \(arguments[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
