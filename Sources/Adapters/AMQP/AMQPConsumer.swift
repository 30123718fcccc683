import Foundation
import Logging
import Synchronization

/// Consumes one queue with manual acknowledgement and a bounded prefetch. One thread owns the
/// connection (rabbitmq-c blocks and is not thread-safe): it polls for deliveries and, between
/// polls, performs the acks and nacks that async callers queued, resuming them when done.
/// `deliveries()` ends with an error when the connection is lost; call it again to reconnect.
public final class AMQPConsumer: Sendable {
    let settings: AMQPSettings
    let topology: AMQPTopology
    public let queue: String
    let prefetch: UInt16
    let logger: Logger

    private enum Settlement { case ack, nack(requeue: Bool) }
    private struct Pending {
        var tag: UInt64
        var settlement: Settlement
        var continuation: CheckedContinuation<Void, any Error>
    }
    private struct Session {
        var pending: [Pending] = []
        var stopped = false
        var alive = false
    }
    private let session = Mutex(Session())

    public init(settings: AMQPSettings, topology: AMQPTopology, queue: String, prefetch: UInt16 = 10, logger: Logger) {
        self.settings = settings
        self.topology = topology
        self.queue = queue
        self.prefetch = prefetch
        self.logger = logger
    }

    /// Connects, declares the topology, starts consuming, and streams deliveries until the stream
    /// is dropped (the thread stops and closes the connection) or the connection fails.
    public func deliveries() async throws -> AsyncThrowingStream<Delivery, any Error> {
        let settings = settings, topology = topology, queue = queue, prefetch = prefetch
        let live = try await BlockingIO.run {
            let connection = try AMQPConnection(settings)
            do {
                try connection.declare(topology)
                try connection.consume(queue: queue, prefetch: prefetch)
            } catch {
                connection.close()
                throw error
            }
            return connection
        }
        session.withLock { $0 = Session(alive: true) }
        return AsyncThrowingStream { continuation in
            let thread = Thread { [self] in
                var failure: (any Error)?
                while failure == nil {
                    let (work, stopped) = session.withLock { state in
                        defer { state.pending.removeAll() }
                        return (state.pending, state.stopped)
                    }
                    for item in work {
                        do {
                            switch item.settlement {
                            case .ack: try live.ack(item.tag)
                            case .nack(let requeue): try live.nack(item.tag, requeue: requeue)
                            }
                            item.continuation.resume()
                        } catch {
                            item.continuation.resume(throwing: error)
                            failure = error
                        }
                    }
                    if stopped || failure != nil { break }
                    do {
                        if let delivery = try live.nextDelivery(timeoutMilliseconds: 20) {
                            continuation.yield(delivery)
                        }
                    } catch {
                        failure = error
                    }
                }
                let orphans = session.withLock { state in
                    state.alive = false
                    defer { state.pending.removeAll() }
                    return state.pending
                }
                for item in orphans { item.continuation.resume(throwing: AMQPError("consumer stopped")) }
                live.close()
                continuation.finish(throwing: failure)
            }
            thread.name = "amqp-consumer-\(queue)"
            continuation.onTermination = { [self] _ in session.withLock { $0.stopped = true } }
            thread.start()
        }
    }

    public func ack(_ delivery: Delivery) async throws {
        try await settle(delivery.deliveryTag, .ack)
    }

    /// Back to the queue (`requeue`), or to the queue's dead-letter exchange.
    public func nack(_ delivery: Delivery, requeue: Bool) async throws {
        try await settle(delivery.deliveryTag, .nack(requeue: requeue))
    }

    private func settle(_ tag: UInt64, _ settlement: Settlement) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let accepted = session.withLock { state -> Bool in
                guard state.alive, !state.stopped else { return false }
                state.pending.append(Pending(tag: tag, settlement: settlement, continuation: continuation))
                return true
            }
            if !accepted { continuation.resume(throwing: AMQPError("not consuming: the delivery will be redelivered")) }
        }
    }
}
