import Events
import Foundation

/// The User aggregate (stream `user-<id>`). A user's id is derived from their normalised email,
/// so "this email is taken" is "this stream exists", and the event store's expected-version check
/// keeps emails unique without a second table.
public enum UserDecider: SnapshottingDecider {
    public enum Command: Sendable, Equatable {
        case register(RegisterUser)
        case recordPasswordSet(userID: UUID, now: Date)
        case grantRole(userID: UUID, role: UserRole, now: Date)
        case revokeRole(userID: UUID, role: UserRole, now: Date)
        case changeTier(userID: UUID, tier: UserTier, now: Date)
        case disable(userID: UUID, now: Date)
        case enable(userID: UUID, now: Date)
    }

    public struct State: Sendable, Codable, Equatable {
        public var exists = false
        public var email: String?
        public var displayName: String?
        public var tenantID: String?
        public var tier: UserTier = .free
        public var roles: [UserRole] = []
        public var disabled = false
        public var hasPassword = false
    }

    public static let category = "user"
    public static let stateVersion = 1
    public static let initialState = State()

    /// The user id of an email: a name-based UUID of its normalised form.
    public static func userID(email: String) -> UUID {
        DeterministicID.v5(namespace: userNamespace, name: normalise(email))
    }

    public static func streamID(_ userID: UUID) -> StreamID { StreamID(category: category, id: userID) }

    static let userNamespace = UUID(uuidString: "5d6c1a3e-0f7b-4c1e-9a51-2b8f4e0c7d91")!

    public static func normalise(_ email: String) -> String {
        email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    public static func decide(_ command: Command, state: State) throws -> [UserEvent] {
        switch command {
        case .register(let register):
            guard !state.exists else { throw DomainError(.conflict, code: .userExists, "a user with this email exists") }
            try register.validate()
            return [.registered(UserRegistered(
                userID: register.userID, email: normalise(register.email), displayName: register.displayName.trimmingCharacters(in: .whitespaces),
                tenantID: register.tenantID, tier: register.tier, roles: Array(Set(register.roles)).sorted { $0.rawValue < $1.rawValue },
                registeredAt: register.now))]
        case .recordPasswordSet(let userID, let now):
            try requireExists(state)
            return [.passwordSet(UserPasswordSet(userID: userID, setAt: now))]
        case .grantRole(let userID, let role, let now):
            try requireExists(state)
            guard !state.roles.contains(role) else { return [] }
            return [.roleGranted(UserRoleGranted(userID: userID, role: role, grantedAt: now))]
        case .revokeRole(let userID, let role, let now):
            try requireExists(state)
            guard state.roles.contains(role) else { return [] }
            return [.roleRevoked(UserRoleRevoked(userID: userID, role: role, revokedAt: now))]
        case .changeTier(let userID, let tier, let now):
            try requireExists(state)
            guard tier != state.tier else { return [] }
            return [.tierChanged(UserTierChanged(userID: userID, tier: tier, changedAt: now))]
        case .disable(let userID, let now):
            try requireExists(state)
            guard !state.disabled else { return [] }
            return [.disabled(UserDisabled(userID: userID, disabledAt: now))]
        case .enable(let userID, let now):
            try requireExists(state)
            guard state.disabled else { return [] }
            return [.enabled(UserEnabled(userID: userID, enabledAt: now))]
        }
    }

    public static func evolve(_ state: State, _ event: UserEvent) -> State {
        var state = state
        switch event {
        case .registered(let registered):
            state.exists = true
            state.email = registered.email
            state.displayName = registered.displayName
            state.tenantID = registered.tenantID
            state.tier = registered.tier
            state.roles = registered.roles
        case .passwordSet:
            state.hasPassword = true
        case .roleGranted(let granted):
            if !state.roles.contains(granted.role) { state.roles.append(granted.role) }
        case .roleRevoked(let revoked):
            state.roles.removeAll { $0 == revoked.role }
        case .tierChanged(let changed):
            state.tier = changed.tier
        case .disabled:
            state.disabled = true
        case .enabled:
            state.disabled = false
        }
        return state
    }

    static func requireExists(_ state: State) throws {
        guard state.exists else { throw DomainError(.notFound, code: .userNotFound, "no such user") }
    }
}

/// Register a user. `userID` must be `UserDecider.userID(email:)`.
public struct RegisterUser: Sendable, Equatable {
    public var userID: UUID
    public var email: String
    public var displayName: String
    public var tenantID: String
    public var tier: UserTier
    public var roles: [UserRole]
    public var now: Date

    public init(email: String, displayName: String, tenantID: String = "default", tier: UserTier = .free, roles: [UserRole] = [.member], now: Date) {
        userID = UserDecider.userID(email: email)
        self.email = email
        self.displayName = displayName
        self.tenantID = tenantID
        self.tier = tier
        self.roles = roles
        self.now = now
    }

    func validate() throws {
        let email = UserDecider.normalise(self.email)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !parts[1].hasPrefix("."),
            !parts[1].hasSuffix("."), !email.contains(where: { $0.isWhitespace || $0.isNewline })
        else {
            throw DomainError(.invalid, code: .userEmailInvalid, "email must look like name@example.com")
        }
        try TextLimit(characters: 1...100).check(
            displayName.trimmingCharacters(in: .whitespaces), field: "display name", code: .userDisplayNameLength)
        guard TextLimit(characters: 1...100).admits(tenantID), tenantID.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw DomainError(.invalid, code: .userTenantInvalid, "tenant must be 1 to 100 letters, digits, '-', '_' or '.'")
        }
    }
}
