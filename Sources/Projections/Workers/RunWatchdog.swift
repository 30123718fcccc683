import Foundation
import Logging
import ServiceLifecycle

/// One module's runs as the watchdog sees them.
public struct SupervisedRuns: Sendable {
    public let name: String
    /// Runs that have not ended and were requested before the date: candidates, from a read
    /// model; the stream decides.
    public let candidates: @Sendable (_ requestedBefore: Date, _ limit: Int) async throws -> [UUID]
    /// Fails the run, as an event saying why, if its stream shows no progress for longer than its
    /// time limit plus `grace`; true if it did.
    public let failIfStalled: @Sendable (_ id: UUID, _ grace: Duration, _ now: Date) async throws -> Bool

    public init(
        name: String, candidates: @escaping @Sendable (Date, Int) async throws -> [UUID],
        failIfStalled: @escaping @Sendable (UUID, Duration, Date) async throws -> Bool
    ) {
        self.name = name
        self.candidates = candidates
        self.failIfStalled = failIfStalled
    }
}

/// Fails runs that stopped making progress: a run whose worker died after its last try, whose
/// message was dead-lettered, or that was lost with a queue, would otherwise stay `running` (or
/// `pending`) for good. Every `interval`, it reads candidates from each module and fails, through
/// the module's command handler and only at the version it examined, each one whose stream has
/// been silent for longer than its time limit plus `grace`. Safe in any number of processes: the
/// append is conditional and idempotent.
public struct RunWatchdog: Service {
    let runs: [SupervisedRuns]
    let interval: Duration
    let grace: Duration
    let logger: Logger

    public init(runs: [SupervisedRuns], interval: Duration = .seconds(30), grace: Duration = .seconds(60), logger: Logger) {
        self.runs = runs
        self.interval = interval
        self.grace = grace
        self.logger = logger
    }

    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            // Returns, never throws, on shutdown: a service that throws makes the group cancel
            // every other one instead of stopping them gracefully.
            while !Task.isCancelled {
                _ = await sweep(now: Date())
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One pass; how many runs it failed.
    public func sweep(now: Date) async -> Int {
        var failed = 0
        let before = now.addingTimeInterval(-Double(grace.components.seconds))
        for module in runs {
            do {
                for id in try await module.candidates(before, 200) where try await module.failIfStalled(id, grace, now) {
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
