import Commands
import API
import Adapters
import Events
import Projections

/// The Identity module: users, tokens, roles and rate limits. It guards everything under
/// `/api/v1`, so it is assembled first.
public struct IdentityModule: ChronicleModule {
    public init() {}

    public var name: String { "identity" }
    public var events: [EventRegistry] { [.identity] }
    public var contracts: [IntegrationContract] { [] }
    public var projections: [ProjectionDeclaration] { [] }
    public var settings: [SettingDescription] { IdentityConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(UserDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try IdentityConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try IdentityConfiguration(app.settings)
        guard app.roles.contains(.api) else { return }
        if configuration.keyOfThisProcessOnly {
            app.logger.warning("CHRONICLE_JWT_SECRET is not set: tokens are signed with a key of this process only (they end with it, and other processes refuse them)")
        }
        let platform = app.platform
        let limiter = RedisRateLimiter(redis: platform.redis, keyspace: platform.namespace)
        let tokens = try await TokenService(settings: configuration.tokens)
        app.identity = .init(
            auth: AuthController(
                tokens: tokens, store: platform.database.eventStore,
                credentials: PostgresCredentialStore(client: platform.database.client, logger: app.logger), hasher: ScryptPasswordHasher(),
                limiter: limiter, loginsPerMinute: configuration.loginsPerMinute),
            middleware: AuthMiddleware(tokens: tokens, users: UserDirectory(store: platform.database.eventStore)),
            rateLimits: RateLimitMiddleware(limiter: limiter, settings: configuration.rateLimits), corsOrigins: configuration.corsOrigins)
        app.add(
            healthCheck: HealthCheck(name: "rate_limiter", critical: false) {
                do {
                    try await limiter.ping()
                } catch {
                    throw AssemblyError("cannot reach Redis: reads and cheap commands pass unlimited, executions are refused (503)")
                }
            })
    }
}
