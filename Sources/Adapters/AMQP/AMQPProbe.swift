import Foundation

/// Opens and closes one AMQP connection (handshake and login): what `/health` reports for RabbitMQ.
public enum AMQPProbe {
    public static func check(_ settings: AMQPSettings, timeout: Duration = .seconds(2)) async throws {
        try await BlockingIO.run { try AMQPConnection(settings, timeout: timeout).close() }
    }

    /// The messages ready in `queue` (nil if it does not exist), for operators and the fault
    /// suite: with no consumer connected, what was left unacknowledged is counted here too.
    public static func readyMessages(_ settings: AMQPSettings, queue: String) async throws -> Int? {
        try await BlockingIO.run {
            let connection = try AMQPConnection(settings)
            defer { connection.close() }
            return connection.readyMessages(queue)
        }
    }
}
