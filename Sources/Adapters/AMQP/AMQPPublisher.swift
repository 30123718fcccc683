import Foundation
import Logging
import Synchronization

/// Publishes with publisher confirms: `publish` returns only once the broker has taken every
/// message, and throws otherwise, so a caller moves its checkpoint only after a confirm. The
/// connection is made (and the topology declared) on first use and again after any failure.
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
            let live = try current()
            do {
                try live.publishConfirmed(messages, timeout: timeout)
            } catch {
                drop(live)
                throw error
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

    private func current() throws -> AMQPConnection {
        if let live = connection.withLock({ $0 }) { return live }
        let fresh = try AMQPConnection(settings)
        do {
            try fresh.declare(topology)
            try fresh.enableConfirms()
        } catch {
            fresh.close()
            throw error
        }
        connection.withLock { $0 = fresh }
        return fresh
    }

    private func drop(_ broken: AMQPConnection) {
        logger.warning("amqp publisher connection dropped; reconnecting on next publish")
        connection.withLock { if $0 === broken { $0 = nil } }
        broken.close()
    }
}
