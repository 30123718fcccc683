import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Per-user limits by tier on every authenticated route, and a tighter one per endpoint for
/// `POST /agents/{id}/execute` and `POST /sandbox/execute` (counted apart). Over a limit: 429 with `Retry-After` and `RateLimit-*`. If the
/// limiter cannot decide (Redis down), reads and cheap commands go through (fail open) and
/// expensive ones (executions) are refused with 503 (fail closed): an outage must not become a
/// way to run models without limits.
public struct RateLimitMiddleware: RouterMiddleware {
    public typealias Context = ChronicleRequestContext

    public struct Settings: Sendable {
        /// Requests per minute per tier; 0 means unlimited.
        public var perTier: [UserTier: Int]
        public var executePerMinute: Int

        public init(perTier: [UserTier: Int] = [.free: 100, .pro: 1000, .enterprise: 0], executePerMinute: Int = 10) {
            self.perTier = perTier
            self.executePerMinute = executePerMinute
        }
    }

    let limiter: any RateLimiter
    let settings: Settings

    public init(limiter: any RateLimiter, settings: Settings = .init()) {
        self.limiter = limiter
        self.settings = settings
    }

    /// The routes with a limit of their own, by the template of the route the router matched and
    /// the bucket they count in. Never by the raw path: the router also matches `/execute/` and
    /// `//api/v1/...`, and every variant it accepts must count exactly like the canonical form.
    public static let expensiveRoutes: [String: String] = [
        "/api/v1/agents/{id}/execute": "agents",
        "/api/v1/sandbox/execute": "sandbox",
        // A fork is a new run; a replay runs the tools again.
        "/api/v1/audit/executions/{execution_id}/fork": "agents",
        "/api/v1/audit/executions/{execution_id}/replay": "agents",
    ]

    /// The execution bucket of a request, or nil for an ordinary one.
    static func executionBucket(_ request: Request, context: Context) -> String? {
        guard request.method == .post, let route = context.endpointPath else { return nil }
        return expensiveRoutes[route]
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let principal = try context.requirePrincipal()
        var limits: [RateLimit] = []
        if let perMinute = settings.perTier[principal.tier], perMinute > 0 {
            limits.append(RateLimit(key: "user:\(principal.userID)", limit: perMinute))
        }
        let bucket = Self.executionBucket(request, context: context)
        let expensive = bucket != nil
        if let bucket, settings.executePerMinute > 0 {
            limits.append(RateLimit(key: "execute:\(bucket):\(principal.userID)", limit: settings.executePerMinute))
        }
        guard !limits.isEmpty else { return try await next(request, context) }
        let decision: RateDecision
        do {
            decision = try await limiter.check(limits)
        } catch {
            guard expensive else {
                context.logger.warning("rate limiter unavailable; letting the request through", metadata: ["error": "\(error)"])
                return try await next(request, context)
            }
            context.logger.warning("rate limiter unavailable; refusing an expensive request", metadata: ["error": "\(error)"])
            throw Problem(
                .serviceUnavailable, code: "rate_limit.unavailable", detail: "rate limits cannot be checked right now; retry shortly",
                headers: [.retryAfter: "5"])
        }
        guard decision.allowed else {
            var headers = Self.headers(decision)
            headers[.retryAfter] = String(decision.retryAfterSeconds)
            throw Problem(
                .tooManyRequests, code: "rate_limit.exceeded",
                detail: "rate limit of \(decision.limit) requests per minute reached; retry in \(decision.retryAfterSeconds) s", headers: headers)
        }
        var response = try await next(request, context)
        response.headers.append(contentsOf: Self.headers(decision))
        return response
    }

    static func headers(_ decision: RateDecision) -> HTTPFields {
        [
            HTTPField.Name("RateLimit-Limit")!: String(decision.limit),
            HTTPField.Name("RateLimit-Remaining")!: String(decision.remaining),
            HTTPField.Name("RateLimit-Reset")!: String(decision.resetSeconds),
        ]
    }
}
