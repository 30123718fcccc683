import Foundation

/// Hashes and checks passwords. The adapter uses a maintained library's slow, salted KDF.
public protocol PasswordHasher: Sendable {
    /// A self-describing hash (algorithm, parameters, salt and digest in one string). Slow on
    /// purpose: implementations run it off the caller's executor.
    func hash(_ password: String) async throws -> String
    func verify(_ password: String, against hash: String) async -> Bool
}

/// Where password hashes live: apart from the events, so they can be replaced and erased.
public protocol CredentialStore: Sendable {
    func passwordHash(of userID: UUID) async throws -> String?
    func setPasswordHash(_ hash: String, of userID: UUID) async throws
}

/// The rules a new password must meet.
public enum PasswordPolicy {
    public static func validate(_ password: String) throws {
        try TextLimit(characters: 12...256).check(password, field: "password", code: .userPasswordLength)
    }
}
