import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /api/v1/auth/token` (the OAuth 2.0 password grant for local users, JSON or form body)
/// and `GET /api/v1/auth/me`.
public struct AuthController: Sendable {
    let tokens: TokenService
    let users: CommandHandler<UserDecider>
    let credentials: any CredentialStore
    let hasher: any PasswordHasher
    let limiter: (any RateLimiter)?
    let loginsPerMinute: Int

    public init(
        tokens: TokenService, store: any EventStore, credentials: any CredentialStore, hasher: any PasswordHasher,
        limiter: (any RateLimiter)? = nil, loginsPerMinute: Int = 10
    ) {
        self.tokens = tokens
        users = CommandHandler(store: store)
        self.credentials = credentials
        self.hasher = hasher
        self.limiter = limiter
        self.loginsPerMinute = loginsPerMinute
    }

    public func addPublicRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post("token", use: token)
    }

    public func addProtectedRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.get("me", use: me)
    }

    struct Grant: Decodable {
        var grantType: String?
        var username: String
        var password: String

        enum CodingKeys: String, CodingKey {
            case username, password
            case grantType = "grant_type"
        }
    }

    struct Issued: Encodable {
        var accessToken: String
        var tokenType = "Bearer"
        var expiresIn: Int

        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case tokenType = "token_type"
            case expiresIn = "expires_in"
        }
    }

    static let invalid = Problem(
        .unauthorized, code: "auth.invalid_credentials", detail: "the email or password is wrong", headers: [.wwwAuthenticate: "Bearer"])

    /// A well-formed hash of nothing anyone knows: unknown users cost the same time as known ones.
    static let decoy = "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$7S3Vx0Q0Vq6b3n3iH8y0y2w8oWq9b1u8Qe0mZ0H3c5U"

    @Sendable func token(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let grant = try await Self.grant(request, context: context)
        if let type = grant.grantType, type != "password" {
            throw Problem(.badRequest, code: "auth.unsupported_grant_type", detail: "only grant_type=password is supported here")
        }
        guard !grant.username.isEmpty, !grant.password.isEmpty, grant.username.utf8.count <= 254, TextLimit(characters: 1...256).admits(grant.password) else { throw Self.invalid }
        let userID = UserDecider.userID(email: grant.username)
        if let limiter, loginsPerMinute > 0 {
            // Against guessing: per account. If the limiter is down, sign-in still works (the
            // slow hash bounds guessing on its own).
            if let decision = try? await limiter.check([RateLimit(key: "login:\(userID.uuidString.lowercased())", limit: loginsPerMinute)]),
                !decision.allowed
            {
                throw Problem(
                    .tooManyRequests, code: "rate_limit.exceeded", detail: "too many sign-in attempts; retry in \(decision.retryAfterSeconds) s",
                    headers: [.retryAfter: String(decision.retryAfterSeconds)])
            }
        }
        let (user, _) = try await users.load(UserDecider.streamID(userID).description)
        let stored = user.exists ? try await credentials.passwordHash(of: userID) : nil
        let matches = await hasher.verify(grant.password, against: stored ?? Self.decoy)
        guard stored != nil, matches else { throw Self.invalid }
        guard !user.disabled else {
            throw Problem(.unauthorized, code: "auth.user_disabled", detail: "this user is disabled", headers: [.wwwAuthenticate: "Bearer"])
        }
        let token = try await tokens.issue(
            userID: userID.uuidString.lowercased(), tenant: user.tenantID ?? "default", roles: user.roles.map(\.rawValue), tier: user.tier.rawValue)
        var response = try Reply.json(Issued(accessToken: token, expiresIn: await tokens.lifetimeSeconds), status: .ok, context: context)
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// JSON, or `application/x-www-form-urlencoded` as OAuth 2.0 clients send it.
    static func grant(_ request: Request, context: ChronicleRequestContext) async throws -> Grant {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix("application/x-www-form-urlencoded") else { return try await request.decode(as: Grant.self, context: context) }
        let body = try await BoundedJSONDecoder.collect(request, limit: context.maxUploadSize)
        var fields: [String: String] = [:]
        for pair in String(buffer: body).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            if kv.count == 2 { fields[kv[0]] = kv[1] }
        }
        guard let username = fields["username"], let password = fields["password"] else {
            throw Problem(.badRequest, code: "request.malformed", detail: "username and password are required")
        }
        return Grant(grantType: fields["grant_type"], username: username, password: password)
    }

    struct Me: Encodable {
        var userID: String
        var tenantID: String
        var roles: [String]
        var tier: String

        enum CodingKeys: String, CodingKey {
            case roles, tier
            case userID = "user_id"
            case tenantID = "tenant_id"
        }
    }

    @Sendable func me(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        return try Reply.json(
            Me(userID: principal.userID, tenantID: principal.tenantID, roles: principal.roles.sorted(), tier: principal.tier.rawValue), status: .ok,
            context: context)
    }
}
