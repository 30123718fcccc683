import CLISupport
import Dispatch
import Foundation
import Composition
import Logging
import Synchronization

/// Bounds a graceful stop. On SIGTERM or SIGINT the service group stops each part in turn, and a
/// part that waits on a dependency which is gone never finishes: PostgresNIO's wait for a pooled
/// connection does not heed cancellation while the database refuses connections, so a server
/// whose database went away ignored SIGTERM for good. After `grace` the process says so and exits
/// with status 1. Stopping hard loses nothing: projectors and the relay resume from their
/// checkpoints, and workers' unacknowledged messages are redelivered to handlers with inboxes.
enum ShutdownDeadline {
    private static let armed = Mutex<[any DispatchSourceSignal]>([])
    private static let started = Atomic<Bool>(false)

    /// Starts watching SIGTERM and SIGINT (beside the service group, which also handles them).
    static func arm(grace: Duration, logger: Logger) {
        armed.withLock { sources in
            guard sources.isEmpty else { return }
            for signal in [SIGTERM, SIGINT] {
                let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
                source.setEventHandler { start(grace: grace, logger: logger) }
                source.resume()
                sources.append(source)
            }
        }
    }

    private static func start(grace: Duration, logger: Logger) {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        // A thread of its own: the concurrency pool may be what is stuck.
        Thread {
            Thread.sleep(forTimeInterval: Double(grace.components.seconds) + Double(grace.components.attoseconds) / 1e18)
            logger.error("graceful shutdown did not finish; stopping now (checkpoints and redelivery make this safe)", metadata: [
                "grace_seconds": "\(grace.components.seconds)",
            ])
            exit(1)
        }.start()
    }

    /// `CHRONICLE_SHUTDOWN_GRACE_SECONDS`: 1 to 3600, 30 by default.
    static func grace(_ settings: Settings) throws -> Duration {
        .seconds(try settings.integer("chronicle.shutdown_grace_seconds", default: 30, range: 1...3600))
    }
}
