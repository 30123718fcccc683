import Foundation

/// Opens and closes one AMQP connection (handshake and login): what `/health` reports for RabbitMQ.
public enum AMQPProbe {
    public static func check(_ settings: AMQPSettings, timeout: Duration = .seconds(2)) async throws {
        try await BlockingIO.run { try AMQPConnection(settings, timeout: timeout).close() }
    }
}
