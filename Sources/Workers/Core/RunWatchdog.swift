import Foundation
import Logging
import ServiceLifecycle

/// One module's runs as the watchdog sees them.
public struct SupervisedRuns: Sendable {
    public let name: String
    /// Runs that have not ended and were requested before the date: candidates, from a read
    /// model; the stream decides.
    public let candidates: @Sendable (_ requestedBefore: Date, _ limit: Int) async throws -> [UUID]
    /// Fails the run, as an event saying why, if its stream shows no progress for longer than
    /// the policy allows; true if it did.
    public let failIfStalled: @Sendable (_ id: UUID, _ policy: StallPolicy, _ now: Date) async throws -> Bool

    public init(
        name: String, candidates: @escaping @Sendable (Date, Int) async throws -> [UUID],
        failIfStalled: @escaping @Sendable (UUID, StallPolicy, Date) async throws -> Bool
    ) {
        self.name = name
        self.candidates = candidates
        self.failIfStalled = failIfStalled
    }
}

/// How long a run may be silent before the watchdog fails it.
public struct StallPolicy: Sendable, Equatable {
    /// A started run: its time limit plus this. Its worker is gone; a redelivery would have
    /// started the next attempt by then.
    public var grace: Duration
    /// A run never started: this, from its request. Its message may be waiting behind a backlog
    /// or an outage, so it gets longer; past it, no worker could take it.
    public var pendingGrace: Duration

    public init(grace: Duration = .seconds(60), pendingGrace: Duration = .seconds(300)) {
        self.grace = grace
        self.pendingGrace = max(pendingGrace, grace)
    }
}

/// Fails runs that stopped making progress: a run whose worker died after its last try, whose
/// message was dead-lettered, or that was lost with a queue, would otherwise stay `running` (or
/// `pending`) for good. Every `interval`, it reads candidates from each module and fails, through
/// the module's command handler and only at the version it examined, each one whose stream has
/// been silent for longer than the `StallPolicy` allows. Safe in any number of processes: the
/// append is conditional and idempotent. The first pass comes one interval after start, so a
/// process that restarts takes its redelivered work before it judges any run lost.
public struct RunWatchdog: Service {
    let runs: [SupervisedRuns]
    let interval: Duration
    let policy: StallPolicy
    let logger: Logger

    public init(runs: [SupervisedRuns], interval: Duration = .seconds(30), policy: StallPolicy = .init(), logger: Logger) {
        self.runs = runs
        self.interval = interval
        self.policy = policy
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            // Returns, never throws, on shutdown: a service that throws makes the group cancel
            // every other one instead of stopping them gracefully.
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                _ = await sweep(now: Date())
            }
        }
    }

    /// One pass; how many runs it failed.
    public func sweep(now: Date) async -> Int {
        var failed = 0
        let before = now.addingTimeInterval(-Double(policy.grace.components.seconds))
        for module in runs {
            do {
                for id in try await module.candidates(before, 200) where try await module.failIfStalled(id, policy, now) {
                    failed += 1
                    logger.warning("failed a run that made no progress", metadata: ["watchdog.module": "\(module.name)", "run.id": "\(id)"])
                }
            } catch is CancellationError {
                return failed
            } catch {
                logger.warning("watchdog pass failed; trying again next time", metadata: ["watchdog.module": "\(module.name)", "error": "\(error)"])
            }
        }
        return failed
    }
}
