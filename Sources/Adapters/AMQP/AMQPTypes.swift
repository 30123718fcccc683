import Foundation

/// A message to publish. `messageID` is the event id, so consumers can drop repeats.
public struct OutgoingMessage: Sendable, Hashable {
    public var exchange: String
    public var routingKey: String
    public var messageID: String
    /// The event or work type, e.g. `AgentExecutionRequested`.
    public var type: String
    public var body: Data
    /// 1 for a first delivery; retries republish with the next number.
    public var attempt: Int

    public init(exchange: String, routingKey: String, messageID: String, type: String, body: Data, attempt: Int = 1) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.messageID = messageID
        self.type = type
        self.body = body
        self.attempt = attempt
    }
}

/// A message a consumer received; settle it with ack or nack on the consumer that gave it.
public struct Delivery: Sendable, Hashable {
    public var deliveryTag: UInt64
    public var exchange: String
    public var routingKey: String
    public var messageID: String?
    public var type: String?
    public var body: Data
    public var redelivered: Bool
    public var attempt: Int
}

/// Exchanges, queues and bindings, declared (idempotently) on every (re)connection.
public struct AMQPTopology: Sendable {
    public struct Queue: Sendable {
        public var name: String
        public var deadLetterExchange: String?
        public var deadLetterRoutingKey: String?
        /// For delay queues: messages expire back to their dead-letter exchange after this.
        public var messageTTL: Duration?
        /// The queue itself is deleted after being unused this long (`x-expires`): for
        /// throwaway consumers, whose queues would otherwise fill up with nobody reading.
        public var expires: Duration?

        public init(
            name: String, deadLetterExchange: String? = nil, deadLetterRoutingKey: String? = nil, messageTTL: Duration? = nil,
            expires: Duration? = nil
        ) {
            self.name = name
            self.deadLetterExchange = deadLetterExchange
            self.deadLetterRoutingKey = deadLetterRoutingKey
            self.messageTTL = messageTTL
            self.expires = expires
        }
    }

    public var exchanges: [(name: String, type: String)]
    public var queues: [Queue]
    public var bindings: [(queue: String, exchange: String, routingKey: String)]

    public init(exchanges: [(name: String, type: String)] = [], queues: [Queue] = [], bindings: [(queue: String, exchange: String, routingKey: String)] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }

    public func merging(_ other: AMQPTopology) -> AMQPTopology {
        AMQPTopology(exchanges: exchanges + other.exchanges, queues: queues + other.queues, bindings: bindings + other.bindings)
    }
}

/// What went wrong with the broker. Any error drops the connection; the next call reconnects.
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
