import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird

/// Every route behind it needs a valid bearer token. Local tokens name a user who must exist
/// and be enabled (checked through the directory, so disabling takes effect within its cache
/// time); their roles, tier and tenant come from the user, not the token, for the same reason.
/// Outside tokens carry their own roles, tier and tenant claims.
public struct AuthMiddleware: RouterMiddleware {
    public typealias Context = ChronicleRequestContext
    let tokens: TokenService
    let users: UserDirectory

    public init(tokens: TokenService, users: UserDirectory) {
        self.tokens = tokens
        self.users = users
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.principal = try await principal(for: request)
        context.logger[metadataKey: "enduser.id"] = "\(context.principal!.userID)"
        return try await next(request, context)
    }

    func principal(for request: Request) async throws -> Principal {
        guard let header = request.headers[.authorization] else { throw TokenError.missing.problem }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { throw TokenError.missing.problem }
        // HTTP's optional whitespace (spaces and tabs), trimmed without Foundation's CharacterSet,
        // which went through NSString on every request.
        var token = parts[1]
        while token.first == " " || token.first == "\t" { token.removeFirst() }
        while token.last == " " || token.last == "\t" { token.removeLast() }
        return try await principal(token: String(token))
    }

    /// The principal a bearer token names (a live socket's first message carries one).
    public func principal(token: String) async throws -> Principal {
        let verified: VerifiedToken
        do {
            verified = try await tokens.verify(token)
        } catch let error as TokenError {
            throw error.problem
        }
        guard verified.isLocal else {
            return Principal(
                userID: verified.subject, tenantID: verified.tenant ?? "default",
                roles: Set(verified.roles.filter { UserRole(rawValue: $0) != nil }),
                tier: verified.tier.flatMap(UserTier.init(rawValue:)) ?? .free)
        }
        guard let id = UUID(uuidString: verified.subject) else { throw TokenError.malformed.problem }
        let user = try await users.user(id)
        guard user.exists else {
            throw Problem(.unauthorized, code: "auth.user_unknown", detail: "the token's user does not exist", headers: [.wwwAuthenticate: "Bearer"])
        }
        guard !user.disabled else {
            throw Problem(.unauthorized, code: "auth.user_disabled", detail: "this user is disabled", headers: [.wwwAuthenticate: "Bearer"])
        }
        return Principal(
            userID: id.uuidString.lowercased(), tenantID: user.tenantID ?? "default", roles: Set(user.roles.map(\.rawValue)), tier: user.tier)
    }
}

/// Authentication for WebSocket upgrades: the `Authorization` header, or `bearer.<token>` among
/// the offered `Sec-WebSocket-Protocol` values; with neither, the upgrade proceeds without a
/// principal and the socket must authenticate in its first message. A token that is present but
/// invalid refuses the upgrade.
struct WebSocketAuthMiddleware: RouterMiddleware {
    typealias Context = ChronicleRequestContext
    let auth: AuthMiddleware

    static let protocolPrefix = "bearer."

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if request.headers[.authorization] != nil {
            context.principal = try await auth.principal(for: request)
        } else if let offered = request.headers[.secWebSocketProtocol] {
            let token = offered.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix(Self.protocolPrefix) }
            if let token { context.principal = try await auth.principal(token: String(token.dropFirst(Self.protocolPrefix.count))) }
        }
        return try await next(request, context)
    }
}
