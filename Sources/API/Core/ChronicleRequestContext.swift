import Foundation
import Hummingbird
import Logging

/// Who is making a request. Every command carries it into its events' metadata, and every
/// Agents route checks ownership against it.
public struct Principal: Sendable, Equatable {
    public var userID: String
    public var tenantID: String
    public var roles: Set<String>

    public init(userID: String, tenantID: String, roles: Set<String>) {
        self.userID = userID
        self.tenantID = tenantID
        self.roles = roles
    }

    /// Admins see and change every owner's resources.
    public var isAdmin: Bool { roles.contains("admin") }

    /// Whether this principal may see a resource of `owner`. Others' resources answer 404.
    public func mayAccess(owner: String) -> Bool { isAdmin || owner == userID }
}

/// The request context of every route: Hummingbird's core storage plus the principal.
public struct ChronicleRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var principal: Principal?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// JSON bodies up to 1 MiB; larger ones answer 413.
    public var maxUploadSize: Int { 1 << 20 }

    public var requestDecoder: JSONDecoder { JSONDecoder() }

    public var responseEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }

    /// The principal, or 401 if no identity middleware set one.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw Problem(.unauthorized, code: "auth.required", detail: "this route needs an identity") }
        return principal
    }
}

/// Until the identity module arrives (users, JWT, roles), every API request acts as one local
/// user, `local` in tenant `local`. The server logs this at start, and the README says so.
public struct LocalIdentityMiddleware: RouterMiddleware {
    public typealias Context = ChronicleRequestContext
    public static let principal = Principal(userID: "local", tenantID: "local", roles: ["member"])

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.principal = Self.principal
        return try await next(request, context)
    }
}
