import Events
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging

/// Who is making a request. Every command carries it into its events' metadata, and every
/// Agents route checks ownership against it.
public struct Principal: Sendable, Equatable {
    public var userID: String
    public var tenantID: String
    public var roles: Set<String>
    public var tier: UserTier

    public init(userID: String, tenantID: String, roles: Set<String>, tier: UserTier = .free) {
        self.userID = userID
        self.tenantID = tenantID
        self.roles = roles
        self.tier = tier
    }

    /// Admins see and change every owner's resources.
    public var isAdmin: Bool { roles.contains(UserRole.admin.rawValue) }

    /// Members (and admins) may change what they may see; viewers only read.
    public var mayWrite: Bool { isAdmin || roles.contains(UserRole.member.rawValue) }

    /// Whether this principal may see a resource of `owner`. Others' resources answer 404.
    public func mayAccess(owner: String) -> Bool { isAdmin || owner == userID }

    /// 403 unless the principal may change things.
    public func requireWrite() throws {
        guard mayWrite else { throw Problem(.forbidden, code: "auth.forbidden", detail: "your role may read but not change resources") }
    }
}

/// The request context of every route: Hummingbird's core storage plus the principal.
public struct ChronicleRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by a WebSocket route that upgrades (the live workflow socket).
    public let webSocket = WebSocketHandlerReference<ChronicleRequestContext>()
    public var principal: Principal?
    /// From `X-Request-ID` or generated; the correlation id of the events a command appends.
    public var requestID: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// JSON bodies up to 1 MiB; larger ones answer 413.
    public var maxUploadSize: Int { 1 << 20 }

    /// Size and depth are checked before decoding; problems name JSON types and paths.
    public var requestDecoder: BoundedJSONDecoder { BoundedJSONDecoder() }

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
