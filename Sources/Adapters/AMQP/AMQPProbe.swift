import CRabbitMQ
import Foundation

/// Opens and closes one AMQP connection (handshake and login): what `/health` reports for RabbitMQ.
public enum AMQPProbe {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func check(_ settings: AMQPSettings, timeout: Duration = .seconds(2)) async throws {
        try await BlockingIO.run {
            guard let connection = amqp_new_connection() else { throw Failure(description: "could not allocate a connection") }
            defer { amqp_destroy_connection(connection) }
            guard let socket = amqp_tcp_socket_new(connection) else { throw Failure(description: "could not allocate a socket") }
            var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
            let status = amqp_socket_open_noblock(socket, settings.host, Int32(settings.port), &tv)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw Failure(description: "connect failed: \(String(cString: amqp_error_string2(status)))")
            }
            let reply = chronicle_amqp_login_plain(
                connection, settings.virtualHost, 0, 131_072, 0, settings.username, settings.password)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "login refused") }
            _ = amqp_connection_close(connection, AMQP_REPLY_SUCCESS)
        }
    }
}
