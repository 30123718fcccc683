import Foundation
import Logging
import Synchronization

/// Publishes with publisher confirms: `publish` returns only once the broker has taken every
/// message, and throws otherwise, so a caller moves its checkpoint only after a confirm. The
/// connection is made (and the topology declared) on first use and again after any failure.
///
/// A publisher is idle for minutes, and rabbitmq-c sends heartbeats only while it is called, so
/// a publisher connection asks for none: the broker then never closes it for silence (it closed
/// them every minute or two, and a worker's retry publish failed on the dead connection). A
/// connection that died anyway (a broker restart) is found by the publish itself, which then
/// goes once more on a fresh connection: delivery is at least once, so a repeat is harmless.
public final class AMQPPublisher: Sendable {
    let settings: AMQPSettings
    let topology: AMQPTopology
    let confirmTimeout: Duration
    let logger: Logger
    private let connection = Mutex<AMQPConnection?>(nil)

    public init(settings: AMQPSettings, topology: AMQPTopology, confirmTimeout: Duration = .seconds(10), logger: Logger) {
        self.settings = settings
        self.topology = topology
        self.confirmTimeout = confirmTimeout
        self.logger = logger
    }

    public func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        let timeout = confirmTimeout
        try await BlockingIO.run { [self] in
            let (live, reused) = try current()
            do {
                try live.publishConfirmed(messages, timeout: timeout)
            } catch {
                drop(live)
                guard reused else { throw error }
                let (fresh, _) = try current()
                do {
                    try fresh.publishConfirmed(messages, timeout: timeout)
                } catch {
                    drop(fresh)
                    throw error
                }
            }
        }
    }

    /// Declares the topology now (it is also declared on every reconnection).
    public func connect() async throws {
        try await BlockingIO.run { [self] in _ = try current() }
    }

    public func close() {
        connection.withLock { $0 }?.close()
        connection.withLock { $0 = nil }
    }

    /// How many connections this publisher has opened (for tests and metrics).
    public var connectionsOpened: Int { opened.withLock { $0 } }
    private let opened = Mutex(0)

    /// The live connection and whether it was made before this call.
    private func current() throws -> (AMQPConnection, reused: Bool) {
        if let live = connection.withLock({ $0 }) { return (live, true) }
        let fresh = try AMQPConnection(settings, heartbeats: false)
        opened.withLock { $0 += 1 }
        do {
            try fresh.declare(topology)
            try fresh.enableConfirms()
        } catch {
            fresh.close()
            throw error
        }
        connection.withLock { $0 = fresh }
        return (fresh, false)
    }

    private func drop(_ broken: AMQPConnection) {
        logger.warning("amqp publisher connection dropped; reconnecting on next publish")
        connection.withLock { if $0 === broken { $0 = nil } }
        broken.close()
    }
}
