import API
import Commands
import Foundation

/// The Identity module's configuration section: tokens, CORS and rate limits.
struct IdentityConfiguration {
    var tokens: TokenService.Settings
    var corsOrigins: [String]
    var rateLimits: RateLimitMiddleware.Settings
    var loginsPerMinute: Int
    /// No key was configured: tokens are signed with one of this process only.
    var keyOfThisProcessOnly = false

    static let settings: [SettingDescription] = [
        .init("chronicle.jwt.secret", "a random key per process (warned)", "HS256 key of local tokens, at least 32 bytes"),
        .init("chronicle.jwt.issuer", "chronicle", "Local tokens' issuer"),
        .init("chronicle.jwt.ttl_seconds", "900", "Local tokens' lifetime (60 to 86400)"),
        .init("chronicle.jwt.external.issuer", "", "An outside identity provider's iss"),
        .init("chronicle.jwt.external.jwks", "", "Its JWKS file"),
        .init("chronicle.jwt.external.pem", "", "Its PEM public key file"),
        .init("chronicle.jwt.external.audience", "", "The aud to require"),
        .init("chronicle.cors.origins", "", "Comma-separated allowed origins (* for any)"),
        .init("chronicle.rate_limit.free", "100", "Requests per minute per free user (0: unlimited)"),
        .init("chronicle.rate_limit.pro", "1000", "Requests per minute per pro user (0: unlimited)"),
        .init("chronicle.rate_limit.enterprise", "0", "Requests per minute per enterprise user (0: unlimited)"),
        .init("chronicle.rate_limit.execute", "10", "Executions per minute per user"),
        .init("chronicle.rate_limit.login", "10", "Sign-in attempts per minute per account"),
    ]

    init(_ settings: Settings) throws {
        let secret: [UInt8]
        if let configured = settings.text("chronicle.jwt.secret", secret: true) {
            guard configured.utf8.count >= 32 else { throw SettingsError("CHRONICLE_JWT_SECRET must be at least 32 bytes") }
            secret = Array(configured.utf8)
        } else {
            var generator = SystemRandomNumberGenerator()
            secret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            keyOfThisProcessOnly = true
        }
        var external: TokenService.Settings.External?
        if let issuer = settings.text("chronicle.jwt.external.issuer") {
            let jwks = try settings.file("chronicle.jwt.external.jwks")
            let pem = try settings.file("chronicle.jwt.external.pem")
            guard jwks != nil || pem != nil else {
                throw SettingsError("CHRONICLE_JWT_EXTERNAL_ISSUER needs CHRONICLE_JWT_EXTERNAL_JWKS or CHRONICLE_JWT_EXTERNAL_PEM (a file)")
            }
            external = .init(issuer: issuer, jwks: jwks, pem: pem, audience: settings.text("chronicle.jwt.external.audience"))
        }
        let ttl = try settings.integer("chronicle.jwt.ttl_seconds", default: 900, range: 60...86_400)
        tokens = .init(issuer: settings.text("chronicle.jwt.issuer", default: "chronicle"), secret: secret, lifetime: .seconds(ttl), external: external)
        corsOrigins = settings.list("chronicle.cors.origins")
        rateLimits = .init(
            perTier: [
                .free: try settings.limit("chronicle.rate_limit.free", default: 100), .pro: try settings.limit("chronicle.rate_limit.pro", default: 1000),
                .enterprise: try settings.limit("chronicle.rate_limit.enterprise", default: 0),
            ],
            executePerMinute: try settings.limit("chronicle.rate_limit.execute", default: 10))
        loginsPerMinute = try settings.limit("chronicle.rate_limit.login", default: 10)
    }
}
