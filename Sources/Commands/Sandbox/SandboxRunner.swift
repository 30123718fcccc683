import Events
import Foundation

/// The port to the isolation runner: run one program under `limits` and say how it ended.
/// Adapters: the process sandbox (namespaces, rlimits, seccomp), and fakes for tests.
public protocol SandboxRunner: Sendable {
    func run(_ code: String, limits: SandboxLimits) async throws -> SandboxResult
    func health() async -> SandboxHealth
}

/// How one run ended, as the runner saw it.
public struct SandboxResult: Sendable, Equatable {
    public enum Ending: Sendable, Equatable {
        /// The interpreter exited by itself with this code.
        case exited(Int)
        /// It was killed by this signal (not at the wall limit).
        case signalled(Int)
        /// It was still running at the wall limit.
        case timedOut
    }

    public var ending: Ending
    /// The limit the run met, if it recognised one: memory, cpu, file_size, disk, processes.
    public var limit: String?
    public var output: SandboxOutput
    public var usage: SandboxUsage
    /// Whether the run as a whole (every process, and its tmpfs) was bounded by a cgroup, besides
    /// each process's rlimits.
    public var inCgroup: Bool

    public init(ending: Ending, limit: String?, output: SandboxOutput, usage: SandboxUsage, inCgroup: Bool = false) {
        self.ending = ending
        self.limit = limit
        self.output = output
        self.usage = usage
        self.inCgroup = inCgroup
    }

    /// The event that records this result.
    public func event(executionID: UUID, attempt: Int, timeoutSeconds: Int, now: Date) -> CodeExecutionEvent {
        let (code, signal): (Int?, Int?) =
            switch ending {
            case .exited(let code): (code, nil)
            case .signalled(let signal): (nil, signal)
            case .timedOut: (nil, nil)
            }
        if ending == .timedOut {
            return .timedOut(CodeExecutionTimedOut(
                executionID: executionID, attempt: attempt, timeoutSeconds: timeoutSeconds, output: output, usage: usage, timedOutAt: now))
        }
        if let limit {
            return .limitExceeded(CodeExecutionLimitExceeded(
                executionID: executionID, attempt: attempt, limit: limit, output: output, exitCode: code, signal: signal, usage: usage,
                exceededAt: now))
        }
        if code == 0 {
            return .completed(CodeExecutionCompleted(
                executionID: executionID, attempt: attempt, output: output, exitCode: 0, usage: usage, completedAt: now))
        }
        let error = signal.map { "the program was killed by signal \($0)" } ?? Self.lastLine(output.stderr) ?? "the program exited with code \(code ?? -1)"
        return .failed(CodeExecutionFailed(
            executionID: executionID, attempt: attempt, error: error, output: output, exitCode: code, signal: signal, usage: usage,
            failedAt: now))
    }

    /// The last non-empty line of a traceback: `ValueError: boom`.
    static func lastLine(_ text: String) -> String? {
        text.split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init)
    }
}

/// The runner's state, for `GET /sandbox/health`.
public struct SandboxHealth: Sendable, Equatable {
    /// Started runners waiting for code, and how many the pool keeps.
    public var warm: Int
    public var warmTarget: Int
    public var running: Int
    public var concurrency: Int
    public var runs: Int
    /// Why the sandbox cannot run code here, if it cannot.
    public var problem: String?
    /// Whether the last run was bounded as a whole by a cgroup (nil before the first run).
    public var cgroup: Bool?

    public init(warm: Int, warmTarget: Int, running: Int, concurrency: Int, runs: Int, problem: String?, cgroup: Bool? = nil) {
        self.warm = warm
        self.warmTarget = warmTarget
        self.running = running
        self.concurrency = concurrency
        self.runs = runs
        self.problem = problem
        self.cgroup = cgroup
    }
}

/// The sandbox could not run the program at all (it did not start): an infrastructure fault,
/// whose message is safe to show.
public struct SandboxUnavailable: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
