import API
import Adapters
import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import Projections
import Synchronization

/// Users, keys and tokens for route tests: the in-memory store, a fast scrypt, a fixed secret.
struct TestIdentity {
    static let secret = Array("test-secret-of-at-least-thirty-two-bytes".utf8)
    static let password = "correct horse battery staple"

    let store = InMemoryEventStore()
    /// The push hub on the store (not started: route tests never stream).
    let hub: EventHub
    let credentials = MemoryCredentials()
    let tokens: TokenService
    let users: UserDirectory
    let limiter: (any RateLimiter)?
    let dependencies: AppDependencies.Identity

    init(limiter: (any RateLimiter)? = nil, directoryTTL: Duration = .seconds(5)) async throws {
        tokens = try await TokenService(settings: .init(secret: Self.secret, lifetime: .seconds(900)))
        users = UserDirectory(store: store, ttl: directoryTTL)
        hub = EventHub(store: store, signal: store.signal)
        self.limiter = limiter
        dependencies = AppDependencies.Identity(
            auth: AuthController(tokens: tokens, store: store, credentials: credentials, hasher: ScryptPasswordHasher(logN: 10), limiter: limiter),
            middleware: AuthMiddleware(tokens: tokens, users: users),
            rateLimits: limiter.map { RateLimitMiddleware(limiter: $0) }, corsOrigins: ["https://app.example.com"])
        for (email, roles, tier) in [
            ("alice@example.com", [UserRole.member], UserTier.free), ("bob@example.com", [.member], .free),
            ("admin@example.com", [.admin], .enterprise), ("vera@example.com", [.viewer], .free),
        ] {
            try await register(email, roles: roles, tier: tier)
        }
    }

    func register(_ email: String, roles: [UserRole], tier: UserTier) async throws {
        let handler = CommandHandler<UserDecider>(store: store)
        let register = RegisterUser(email: email, displayName: email, tenantID: "t1", tier: tier, roles: roles, now: Date())
        _ = try await handler.handle(.register(register), on: UserDecider.streamID(register.userID), context: CommandContext())
        try await credentials.setPasswordHash(try await ScryptPasswordHasher(logN: 10).hash(Self.password), of: register.userID)
    }

    func token(_ email: String) async throws -> String {
        let id = UserDecider.userID(email: email)
        let (state, _) = try await CommandHandler<UserDecider>(store: store).load(UserDecider.streamID(id).description)
        return try await tokens.issue(
            userID: id.uuidString.lowercased(), tenant: state.tenantID ?? "t1", roles: state.roles.map(\.rawValue), tier: state.tier.rawValue)
    }

    func bearer(_ email: String) async throws -> HTTPFields {
        [.authorization: "Bearer \(try await token(email))"]
    }
}

final class MemoryCredentials: CredentialStore {
    let hashes = Mutex<[UUID: String]>([:])
    func passwordHash(of userID: UUID) async throws -> String? { hashes.withLock { $0[userID] } }
    func setPasswordHash(_ hash: String, of userID: UUID) async throws { hashes.withLock { $0[userID] = hash } }
}

extension HTTPFields {
    static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
        var result = lhs
        result.append(contentsOf: rhs)
        return result
    }
}
