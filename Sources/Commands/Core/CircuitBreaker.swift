/// A circuit breaker as a value-type state machine: no clock, no I/O; the caller passes the time
/// in seconds (any monotonic origin) and acts on the decision. Closed, it counts outcomes over a
/// sliding window and opens when at least `minimumCalls` happened and the failure rate reached
/// `failureRateThreshold`. Open, it refuses calls for `openSeconds`; then it lets one trial
/// through (half-open): success closes it, failure opens it again.
public struct CircuitBreaker: Sendable, Equatable {
    public struct Configuration: Sendable, Equatable {
        public var failureRateThreshold: Double
        public var minimumCalls: Int
        public var windowSeconds: Double
        public var openSeconds: Double

        /// Seed 000 §4.1: open at a 50 % error rate, for 60 s.
        public init(failureRateThreshold: Double = 0.5, minimumCalls: Int = 10, windowSeconds: Double = 60, openSeconds: Double = 60) {
            self.failureRateThreshold = failureRateThreshold
            self.minimumCalls = max(1, minimumCalls)
            self.windowSeconds = windowSeconds
            self.openSeconds = openSeconds
        }
    }

    public enum State: Sendable, Equatable {
        case closed
        case open(until: Double)
        case halfOpen(trialInFlight: Bool)
    }

    public enum Decision: Sendable, Equatable {
        case allow
        case reject(retryInSeconds: Double)
    }

    public let configuration: Configuration
    public private(set) var state: State = .closed
    private var outcomes: [(time: Double, failed: Bool)] = []

    public init(_ configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public static func == (lhs: CircuitBreaker, rhs: CircuitBreaker) -> Bool {
        lhs.configuration == rhs.configuration && lhs.state == rhs.state && lhs.outcomes.map(\.failed) == rhs.outcomes.map(\.failed)
    }

    /// Whether a call may go out now. In half-open, only one trial at a time.
    public mutating func permit(now: Double) -> Decision {
        switch state {
        case .closed:
            return .allow
        case .open(let until):
            guard now >= until else { return .reject(retryInSeconds: until - now) }
            state = .halfOpen(trialInFlight: true)
            return .allow
        case .halfOpen(let trialInFlight):
            if trialInFlight { return .reject(retryInSeconds: 1) }
            state = .halfOpen(trialInFlight: true)
            return .allow
        }
    }

    public mutating func record(failed: Bool, now: Double) {
        switch state {
        case .halfOpen:
            if failed {
                state = .open(until: now + configuration.openSeconds)
            } else {
                state = .closed
                outcomes.removeAll()
            }
        case .open:
            // A call let through before the breaker opened; it changes nothing.
            return
        case .closed:
            outcomes.append((now, failed))
            outcomes.removeAll { $0.time <= now - configuration.windowSeconds }
            let failures = outcomes.count { $0.failed }
            if outcomes.count >= configuration.minimumCalls,
                Double(failures) / Double(outcomes.count) >= configuration.failureRateThreshold
            {
                state = .open(until: now + configuration.openSeconds)
                outcomes.removeAll()
            }
        }
    }

    /// A permitted call that ended without an outcome worth counting (e.g. cancelled).
    public mutating func abandon() {
        if case .halfOpen = state { state = .halfOpen(trialInFlight: false) }
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }
}
