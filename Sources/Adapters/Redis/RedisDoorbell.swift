import CHiredis
import Commands
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A Redis pub/sub channel that processes ring after they commit, so the others read the log now
/// rather than at their next poll. The ring carries no event: every process reads the events
/// themselves from the log, so a lost ring (Redis down, a subscriber reconnecting) costs latency,
/// never an event. Receiving a ring calls `onRing` with its payload; the process's own rings come
/// back too, which is harmless.
///
/// The subscriber holds its own hiredis connection on a thread of its own (a subscribed
/// connection blocks on reads; it must not hold a thread of the shared blocking pool). It wakes
/// every `idle` to see whether it should stop (hiredis cannot resume a timed-out read, so it
/// reconnects then), and after any error it reconnects every second.
public final class RedisDoorbell: Doorbell, Service, Sendable {
    public let channel: String
    let settings: RedisSettings
    let publisher: RedisClient
    let idle: Duration
    let logger: Logger
    let handlers = Mutex<[@Sendable (String) -> Void]>([])
    let stopping = Atomic<Bool>(false)

    public init(channel: String, settings: RedisSettings, publisher: RedisClient, idle: Duration = .seconds(15), logger: Logger) {
        self.channel = channel
        self.settings = settings
        self.publisher = publisher
        self.idle = idle
        self.logger = logger
    }

    /// Calls `handler` with each ring's payload, on the subscriber's thread: keep it short.
    public func onRing(_ handler: @escaping @Sendable (String) -> Void) {
        handlers.withLock { $0.append(handler) }
    }

    /// Publishes a ring; a Redis that cannot be reached is logged, not thrown: the ring is a hint.
    public func ring(_ payload: String) async {
        do {
            _ = try await publisher.command("PUBLISH", channel, payload)
        } catch {
            logger.debug("doorbell not rung", metadata: ["error": "\(error)"])
        }
    }

    public func run() async throws {
        stopping.store(false, ordering: .relaxed)
        let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let finished = Atomic<Bool>(false)
        let thread = Thread { [self] in
            listen()
            finished.store(true, ordering: .relaxed)
            done.withLock { $0.take() }?.resume()
        }
        thread.name = "chronicle-doorbell"
        thread.start()
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = done.withLock { slot -> Bool in
                        if finished.load(ordering: .relaxed) || Task.isCancelled { return true }
                        slot = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                self.stopping.store(true, ordering: .relaxed)
                // The thread notices within `idle`; nobody waits for it.
                done.withLock { $0.take() }?.resume()
            }
        }
    }

    /// Subscribe, read messages until stopped; on any error, wait a second and start over.
    func listen() {
        while !stopping.load(ordering: .relaxed) {
            do {
                let connection = try RedisConnection(settings, timeout: idle)
                _ = try connection.command(["SUBSCRIBE", channel])
                while !stopping.load(ordering: .relaxed) {
                    guard let reply = try connection.read() else {
                        // Nothing within `idle`: hiredis marks a timed-out read as an error, so
                        // the connection is replaced (a ring in that instant is the lost kind).
                        break
                    }
                    guard case .array(let parts) = reply, parts.count == 3, case .string("message") = parts[0], case .string(let payload) = parts[2]
                    else { continue }
                    for handler in handlers.withLock({ $0 }) { handler(payload) }
                }
            } catch {
                logger.debug("doorbell subscriber reconnecting", metadata: ["error": "\(error)"])
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }
}
