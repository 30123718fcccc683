import Foundation

/// One limit a request counts against: at most `limit` requests per `window` under `key`.
public struct RateLimit: Sendable, Equatable {
    public var key: String
    public var limit: Int
    public var window: Duration

    public init(key: String, limit: Int, window: Duration = .seconds(60)) {
        self.key = key
        self.limit = limit
        self.window = window
    }
}

/// What the limiter decided, with what the `RateLimit-*` headers report: the tightest limit's
/// remaining requests and seconds until it resets.
public struct RateDecision: Sendable, Equatable {
    public var allowed: Bool
    public var limit: Int
    public var remaining: Int
    public var resetSeconds: Int
    /// When refused: seconds until a request would be allowed.
    public var retryAfterSeconds: Int

    public init(allowed: Bool, limit: Int, remaining: Int, resetSeconds: Int, retryAfterSeconds: Int) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// Counts requests against limits, atomically across every process (Redis in Adapters). A
/// refused request counts against none of them.
public protocol RateLimiter: Sendable {
    func check(_ limits: [RateLimit]) async throws -> RateDecision
}
