import Foundation

/// A user's service tier: it sets their rate limit.
public enum UserTier: String, Codable, Sendable, CaseIterable {
    case free, pro, enterprise
}

/// A role, with what it allows: `viewer` reads its own resources, `member` also changes them,
/// `admin` reads and changes everyone's (and operates the platform).
public enum UserRole: String, Codable, Sendable, CaseIterable {
    case admin, member, viewer
}

/// A user was registered. The password is not here: events are kept forever and copied widely,
/// so credentials live in their own table (see `UserPasswordSet`).
public struct UserRegistered: DomainEvent {
    public static let eventType = "UserRegistered"

    public var userID: UUID
    public var email: String
    public var displayName: String
    public var tenantID: String
    public var tier: UserTier
    public var roles: [UserRole]
    public var registeredAt: Date

    public init(userID: UUID, email: String, displayName: String, tenantID: String, tier: UserTier, roles: [UserRole], registeredAt: Date) {
        self.userID = userID
        self.email = email
        self.displayName = displayName
        self.tenantID = tenantID
        self.tier = tier
        self.roles = roles
        self.registeredAt = registeredAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case tenantID = "tenantId"
        case email, displayName, tier, roles, registeredAt
    }
}

/// The user's password was set or changed (the salted hash is stored apart).
public struct UserPasswordSet: DomainEvent {
    public static let eventType = "UserPasswordSet"

    public var userID: UUID
    public var setAt: Date

    public init(userID: UUID, setAt: Date) {
        self.userID = userID
        self.setAt = setAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case setAt
    }
}

/// A role was granted to the user.
public struct UserRoleGranted: DomainEvent {
    public static let eventType = "UserRoleGranted"

    public var userID: UUID
    public var role: UserRole
    public var grantedAt: Date

    public init(userID: UUID, role: UserRole, grantedAt: Date) {
        self.userID = userID
        self.role = role
        self.grantedAt = grantedAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case role, grantedAt
    }
}

/// A role was taken from the user.
public struct UserRoleRevoked: DomainEvent {
    public static let eventType = "UserRoleRevoked"

    public var userID: UUID
    public var role: UserRole
    public var revokedAt: Date

    public init(userID: UUID, role: UserRole, revokedAt: Date) {
        self.userID = userID
        self.role = role
        self.revokedAt = revokedAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case role, revokedAt
    }
}

/// The user moved to another tier.
public struct UserTierChanged: DomainEvent {
    public static let eventType = "UserTierChanged"

    public var userID: UUID
    public var tier: UserTier
    public var changedAt: Date

    public init(userID: UUID, tier: UserTier, changedAt: Date) {
        self.userID = userID
        self.tier = tier
        self.changedAt = changedAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case tier, changedAt
    }
}

/// The user may no longer sign in, and their tokens stop working.
public struct UserDisabled: DomainEvent {
    public static let eventType = "UserDisabled"

    public var userID: UUID
    public var disabledAt: Date

    public init(userID: UUID, disabledAt: Date) {
        self.userID = userID
        self.disabledAt = disabledAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case disabledAt
    }
}

/// A disabled user may sign in again.
public struct UserEnabled: DomainEvent {
    public static let eventType = "UserEnabled"

    public var userID: UUID
    public var enabledAt: Date

    public init(userID: UUID, enabledAt: Date) {
        self.userID = userID
        self.enabledAt = enabledAt
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case enabledAt
    }
}

/// The events of the User aggregate (stream `user-<id>`).
public enum UserEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .identity }

    case registered(UserRegistered)
    case passwordSet(UserPasswordSet)
    case roleGranted(UserRoleGranted)
    case roleRevoked(UserRoleRevoked)
    case tierChanged(UserTierChanged)
    case disabled(UserDisabled)
    case enabled(UserEnabled)

    public var payload: any DomainEvent {
        switch self {
        case .registered(let e): e
        case .passwordSet(let e): e
        case .roleGranted(let e): e
        case .roleRevoked(let e): e
        case .tierChanged(let e): e
        case .disabled(let e): e
        case .enabled(let e): e
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let e as UserRegistered: self = .registered(e)
        case let e as UserPasswordSet: self = .passwordSet(e)
        case let e as UserRoleGranted: self = .roleGranted(e)
        case let e as UserRoleRevoked: self = .roleRevoked(e)
        case let e as UserTierChanged: self = .tierChanged(e)
        case let e as UserDisabled: self = .disabled(e)
        case let e as UserEnabled: self = .enabled(e)
        default: return nil
        }
    }
}

extension EventRegistry {
    /// The Identity module's stored event types.
    public static let identity: EventRegistry = {
        var registry = EventRegistry()
        registry.register(UserRegistered.self)
        registry.register(UserPasswordSet.self)
        registry.register(UserRoleGranted.self)
        registry.register(UserRoleRevoked.self)
        registry.register(UserTierChanged.self)
        registry.register(UserDisabled.self)
        registry.register(UserEnabled.self)
        return registry
    }()
}
