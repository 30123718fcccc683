import CRabbitMQ
import Foundation

/// One rabbitmq-c connection with one channel. rabbitmq-c is blocking and not thread-safe: every
/// call here runs under `lock`, off the event loops.
final class AMQPConnection: @unchecked Sendable {
    private let state: amqp_connection_state_t
    private let channel: amqp_channel_t = 1
    private let lock = NSLock()
    private var nextPublishTag: UInt64 = 1
    private var closed = false

    /// `heartbeats`: whether to ask for the settings' heartbeat. rabbitmq-c sends heartbeats only
    /// while it is called, so only a connection polled more often than the timeout may ask.
    init(_ settings: AMQPSettings, timeout: Duration = .seconds(5), heartbeats: Bool = true) throws {
        guard let state = amqp_new_connection() else { throw AMQPError("could not allocate a connection") }
        // From here on deinit destroys the state, also when this initializer throws: a throwing
        // class initializer runs deinit once every stored property is set. Never destroy it here;
        // mark it closed so deinit does not try to say goodbye on a connection that never opened.
        self.state = state
        closed = true
        guard let socket = amqp_tcp_socket_new(state) else { throw AMQPError("could not allocate a socket") }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        let status = amqp_socket_open_noblock(socket, settings.host, Int32(settings.port), &tv)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError("connect to \(settings.host):\(settings.port) failed: \(String(cString: amqp_error_string2(status)))")
        }
        // A peer that vanished without a word (a host that died) is found by TCP keepalive
        // within about a minute, heartbeats or not.
        Self.keepAlive(amqp_socket_get_sockfd(socket))
        let login = chronicle_amqp_login_plain(
            state, settings.virtualHost, 0, 131_072, heartbeats ? settings.heartbeatSeconds : 0, settings.username, settings.password)
        guard login.reply_type == AMQP_RESPONSE_NORMAL else { throw AMQPError("login to \(settings.host):\(settings.port) refused") }
        closed = false
        amqp_channel_open(state, channel)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { throw AMQPError("channel open failed") }
    }

    private static func keepAlive(_ fd: Int32) {
        guard fd >= 0 else { return }
        var on: Int32 = 1, idle: Int32 = 30, interval: Int32 = 10, count: Int32 = 3
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
    }

    deinit {
        if !closed {
            _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        }
        amqp_destroy_connection(state)
    }

    func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            _ = amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS)
            _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        }
    }

    /// The messages ready in `queue`; nil if it does not exist.
    func readyMessages(_ queue: String) -> Int? {
        lock.withLock {
            let count = chronicle_amqp_queue_ready(state, channel, queue)
            return count < 0 ? nil : count
        }
    }

    func declare(_ topology: AMQPTopology) throws {
        try lock.withLock {
            for exchange in topology.exchanges {
                guard chronicle_amqp_exchange_declare(state, channel, exchange.name, exchange.type) == 0 else {
                    throw AMQPError("declaring exchange \(exchange.name) failed")
                }
            }
            for queue in topology.queues {
                let milliseconds = { (duration: Duration?) in
                    duration.map { Int32($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) } ?? 0
                }
                let ttl = milliseconds(queue.messageTTL)
                let expires = milliseconds(queue.expires)
                guard chronicle_amqp_queue_declare(state, channel, queue.name, queue.deadLetterExchange, queue.deadLetterRoutingKey, ttl, expires) == 0
                else {
                    throw AMQPError("declaring queue \(queue.name) failed")
                }
            }
            for binding in topology.bindings {
                guard chronicle_amqp_queue_bind(state, channel, binding.queue, binding.exchange, binding.routingKey) == 0 else {
                    throw AMQPError("binding \(binding.queue) to \(binding.exchange) failed")
                }
            }
        }
    }

    func enableConfirms() throws {
        try lock.withLock {
            amqp_confirm_select(state, channel)
            guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { throw AMQPError("confirm.select failed") }
        }
    }

    /// Publishes every message, then waits until the broker confirmed all of them.
    func publishConfirmed(_ messages: [OutgoingMessage], timeout: Duration) throws {
        try lock.withLock {
            let first = nextPublishTag
            for message in messages {
                let status = message.body.withUnsafeBytes { body in
                    chronicle_amqp_publish(
                        state, channel, message.exchange, message.routingKey, message.messageID, message.type,
                        body.baseAddress, body.count, Int32(message.attempt))
                }
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError("publish failed: \(String(cString: amqp_error_string2(status)))")
                }
                nextPublishTag += 1
            }
            var pending = Set(first..<nextPublishTag)
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while !pending.isEmpty {
                guard ContinuousClock.now < deadline else { throw AMQPError("no publisher confirm within \(timeout)") }
                var tag: UInt64 = 0
                var multiple: Int32 = 0
                var nack: Int32 = 0
                switch chronicle_amqp_wait_confirm(state, 200, &tag, &multiple, &nack) {
                case 0:
                    if nack != 0 { throw AMQPError("the broker refused message \(tag)") }
                    if multiple != 0 { pending = pending.filter { $0 > tag } } else { pending.remove(tag) }
                case 1: continue
                default: throw AMQPError("connection lost while waiting for confirms")
                }
            }
        }
    }

    func consume(queue: String, prefetch: UInt16) throws {
        try lock.withLock {
            amqp_basic_qos(state, channel, 0, prefetch, 0)
            guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { throw AMQPError("basic.qos failed") }
            amqp_basic_consume(state, channel, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
            guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else {
                throw AMQPError("basic.consume on \(queue) failed")
            }
        }
    }

    /// The next delivery, or nil when none arrived within `timeoutMilliseconds`.
    func nextDelivery(timeoutMilliseconds: Int32) throws -> Delivery? {
        try lock.withLock {
            var envelope = amqp_envelope_t()
            switch chronicle_amqp_consume(state, &envelope, timeoutMilliseconds) {
            case 0:
                defer { amqp_destroy_envelope(&envelope) }
                return Delivery(
                    deliveryTag: envelope.delivery_tag,
                    exchange: Self.string(envelope.exchange), routingKey: Self.string(envelope.routing_key),
                    messageID: chronicle_amqp_envelope_has_message_id(&envelope) != 0 ? Self.string(envelope.message.properties.message_id) : nil,
                    type: chronicle_amqp_envelope_has_type(&envelope) != 0 ? Self.string(envelope.message.properties.type) : nil,
                    body: Self.data(envelope.message.body), redelivered: envelope.redelivered != 0,
                    attempt: Int(chronicle_amqp_envelope_attempt(&envelope)))
            case 1:
                return nil
            default:
                throw AMQPError("connection lost while consuming")
            }
        }
    }

    func ack(_ tag: UInt64) throws {
        try lock.withLock {
            guard amqp_basic_ack(state, channel, tag, 0) == 0 else { throw AMQPError("ack failed") }
        }
    }

    /// Rejects a delivery: back to the queue, or (requeue false) to its dead-letter exchange.
    func nack(_ tag: UInt64, requeue: Bool) throws {
        try lock.withLock {
            guard amqp_basic_nack(state, channel, tag, 0, requeue ? 1 : 0) == 0 else { throw AMQPError("nack failed") }
        }
    }

    private static func string(_ bytes: amqp_bytes_t) -> String {
        guard let base = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }

    private static func data(_ bytes: amqp_bytes_t) -> Data {
        guard let base = bytes.bytes else { return Data() }
        return Data(bytes: base, count: bytes.len)
    }
}
