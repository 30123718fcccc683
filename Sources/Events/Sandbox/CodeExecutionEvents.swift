import Foundation

/// The limits one sandboxed run had. Stored with the request, so the run and its replay never
/// depend on the configuration of the day.
public struct SandboxLimits: Codable, Sendable, Hashable {
    /// Wall time, from when the code reaches the interpreter to its exit.
    public var timeoutSeconds: Int
    public var cpuSeconds: Int
    /// Address space (RLIMIT_AS).
    public var memoryBytes: Int64
    /// The largest file the program may write.
    public var fileBytes: Int64
    public var openFiles: Int
    /// Processes and threads, counted inside the run's own user namespace.
    public var processes: Int
    /// Kept of stdout, and of stderr, each; the rest is counted and dropped.
    public var outputBytes: Int
    /// The size of the private tmpfs at /workspace, and of the one at /tmp.
    public var workspaceBytes: Int64

    public init(
        timeoutSeconds: Int = 5, cpuSeconds: Int = 10, memoryBytes: Int64 = 512 << 20, fileBytes: Int64 = 32 << 20, openFiles: Int = 256,
        processes: Int = 64, outputBytes: Int = 1 << 20, workspaceBytes: Int64 = 64 << 20
    ) {
        self.timeoutSeconds = timeoutSeconds
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.fileBytes = fileBytes
        self.openFiles = openFiles
        self.processes = processes
        self.outputBytes = outputBytes
        self.workspaceBytes = workspaceBytes
    }

    /// The same limits with another wall time.
    public func with(timeoutSeconds: Int) -> SandboxLimits {
        var copy = self
        copy.timeoutSeconds = timeoutSeconds
        return copy
    }
}

/// What a finished run used.
public struct SandboxUsage: Codable, Sendable, Equatable {
    public var durationMs: Int
    public var cpuMs: Int
    public var peakMemoryBytes: Int64

    public init(durationMs: Int, cpuMs: Int, peakMemoryBytes: Int64) {
        self.durationMs = durationMs
        self.cpuMs = cpuMs
        self.peakMemoryBytes = peakMemoryBytes
    }
}

/// What the program wrote, as kept: each stream capped, with how much was written in all.
public struct SandboxOutput: Codable, Sendable, Equatable {
    public var stdout: String
    public var stderr: String
    public var stdoutBytes: Int64
    public var stderrBytes: Int64

    public init(stdout: String, stderr: String, stdoutBytes: Int64, stderrBytes: Int64) {
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutBytes = stdoutBytes
        self.stderrBytes = stderrBytes
    }

    public static let empty = SandboxOutput(stdout: "", stderr: "", stdoutBytes: 0, stderrBytes: 0)
}

/// Someone asked to run code in the sandbox. Only `python` is accepted.
public struct CodeExecutionRequested: DomainEvent {
    public static let eventType = "CodeExecutionRequested"

    public var executionID: UUID
    public var ownerID: String
    public var language: String
    public var code: String
    public var limits: SandboxLimits
    public var maxAttempts: Int
    public var requestedAt: Date

    public init(
        executionID: UUID, ownerID: String, language: String, code: String, limits: SandboxLimits, maxAttempts: Int, requestedAt: Date
    ) {
        self.executionID = executionID
        self.ownerID = ownerID
        self.language = language
        self.code = code
        self.limits = limits
        self.maxAttempts = maxAttempts
        self.requestedAt = requestedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case ownerID = "ownerId"
        case language, code, limits, maxAttempts, requestedAt
    }
}

/// A sandbox worker began an attempt. A later attempt (the worker died) supersedes it.
public struct CodeExecutionStarted: DomainEvent {
    public static let eventType = "CodeExecutionStarted"

    public var executionID: UUID
    public var attempt: Int
    public var startedAt: Date

    public init(executionID: UUID, attempt: Int, startedAt: Date) {
        self.executionID = executionID
        self.attempt = attempt
        self.startedAt = startedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case attempt, startedAt
    }
}

/// The program ran to its end and exited 0. Terminal.
public struct CodeExecutionCompleted: DomainEvent {
    public static let eventType = "CodeExecutionCompleted"

    public var executionID: UUID
    public var attempt: Int
    public var output: SandboxOutput
    public var exitCode: Int
    public var usage: SandboxUsage
    public var completedAt: Date

    public init(executionID: UUID, attempt: Int, output: SandboxOutput, exitCode: Int, usage: SandboxUsage, completedAt: Date) {
        self.executionID = executionID
        self.attempt = attempt
        self.output = output
        self.exitCode = exitCode
        self.usage = usage
        self.completedAt = completedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case attempt, output, exitCode, usage, completedAt
    }
}

/// The program failed: an uncaught exception or a non-zero exit (`exitCode`), a signal
/// (`signal`), or the sandbox could not run it at all (neither; `error` says why). Terminal.
public struct CodeExecutionFailed: DomainEvent {
    public static let eventType = "CodeExecutionFailed"

    public var executionID: UUID
    public var attempt: Int
    public var error: String
    public var output: SandboxOutput
    public var exitCode: Int?
    public var signal: Int?
    public var usage: SandboxUsage?
    public var failedAt: Date

    public init(
        executionID: UUID, attempt: Int, error: String, output: SandboxOutput, exitCode: Int?, signal: Int?, usage: SandboxUsage?,
        failedAt: Date
    ) {
        self.executionID = executionID
        self.attempt = attempt
        self.error = error
        self.output = output
        self.exitCode = exitCode
        self.signal = signal
        self.usage = usage
        self.failedAt = failedAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case attempt, error, output, exitCode, signal, usage, failedAt
    }
}

/// The program was still running at its wall time limit and was killed, with every process it
/// started. Terminal.
public struct CodeExecutionTimedOut: DomainEvent {
    public static let eventType = "CodeExecutionTimedOut"

    public var executionID: UUID
    public var attempt: Int
    public var timeoutSeconds: Int
    public var output: SandboxOutput
    public var usage: SandboxUsage
    public var timedOutAt: Date

    public init(executionID: UUID, attempt: Int, timeoutSeconds: Int, output: SandboxOutput, usage: SandboxUsage, timedOutAt: Date) {
        self.executionID = executionID
        self.attempt = attempt
        self.timeoutSeconds = timeoutSeconds
        self.output = output
        self.usage = usage
        self.timedOutAt = timedOutAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case attempt, timeoutSeconds, output, usage, timedOutAt
    }
}

/// The program ran into one of its limits and ended because of it. Terminal.
public struct CodeExecutionLimitExceeded: DomainEvent {
    public static let eventType = "CodeExecutionLimitExceeded"

    /// Which limit: `memory`, `cpu`, `file_size`, `disk` (the workspace or /tmp is full) or
    /// `processes`.
    public var limit: String
    public var executionID: UUID
    public var attempt: Int
    public var output: SandboxOutput
    public var exitCode: Int?
    public var signal: Int?
    public var usage: SandboxUsage
    public var exceededAt: Date

    public init(
        executionID: UUID, attempt: Int, limit: String, output: SandboxOutput, exitCode: Int?, signal: Int?, usage: SandboxUsage,
        exceededAt: Date
    ) {
        self.executionID = executionID
        self.attempt = attempt
        self.limit = limit
        self.output = output
        self.exitCode = exitCode
        self.signal = signal
        self.usage = usage
        self.exceededAt = exceededAt
    }

    enum CodingKeys: String, CodingKey {
        case executionID = "executionId"
        case attempt, limit, output, exitCode, signal, usage, exceededAt
    }
}

/// The events of one sandboxed run (stream `codeexecution-<id>`).
public enum CodeExecutionEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .sandbox }

    case requested(CodeExecutionRequested)
    case started(CodeExecutionStarted)
    case completed(CodeExecutionCompleted)
    case failed(CodeExecutionFailed)
    case timedOut(CodeExecutionTimedOut)
    case limitExceeded(CodeExecutionLimitExceeded)

    public var payload: any DomainEvent {
        switch self {
        case .requested(let event): event
        case .started(let event): event
        case .completed(let event): event
        case .failed(let event): event
        case .timedOut(let event): event
        case .limitExceeded(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as CodeExecutionRequested: self = .requested(event)
        case let event as CodeExecutionStarted: self = .started(event)
        case let event as CodeExecutionCompleted: self = .completed(event)
        case let event as CodeExecutionFailed: self = .failed(event)
        case let event as CodeExecutionTimedOut: self = .timedOut(event)
        case let event as CodeExecutionLimitExceeded: self = .limitExceeded(event)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The stored event types of sandboxed runs.
    public static let sandbox: EventRegistry = {
        var registry = EventRegistry()
        registry.register(CodeExecutionRequested.self)
        registry.register(CodeExecutionStarted.self)
        registry.register(CodeExecutionCompleted.self)
        registry.register(CodeExecutionFailed.self)
        registry.register(CodeExecutionTimedOut.self)
        registry.register(CodeExecutionLimitExceeded.self)
        return registry
    }()
}
