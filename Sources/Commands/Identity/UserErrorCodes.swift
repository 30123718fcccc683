extension DomainError.Code {
    // The Identity module's error codes.
    public static let userDisplayNameLength: Self = "user.display_name_length"
    public static let userEmailInvalid: Self = "user.email_invalid"
    public static let userExists: Self = "user.exists"
    public static let userNotFound: Self = "user.not_found"
    public static let userPasswordLength: Self = "user.password_length"
    public static let userTenantInvalid: Self = "user.tenant_invalid"
}
