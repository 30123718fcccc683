import API
import Adapters
import ArgumentParser
import Commands
import Events
import Foundation
import Logging

/// Tokens, CORS and rate limits, from the environment (see the README's table).
struct IdentityConfiguration {
    var tokens: TokenService.Settings
    var corsOrigins: [String]
    var rateLimits: RateLimitMiddleware.Settings
    var loginsPerMinute: Int

    static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) async throws -> IdentityConfiguration {
        func integer(_ name: String, _ fallback: Int) throws -> Int {
            guard let text = env[name], !text.isEmpty else { return fallback }
            guard let value = Int(text), value >= 0 else { throw ValidationError("\(name) must be a whole number ≥ 0 (0 means unlimited)") }
            return value
        }
        func file(_ name: String) throws -> String? {
            guard let path = env[name], !path.isEmpty else { return nil }
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ValidationError("\(name): cannot read \(path)")
            }
        }
        let secret: [UInt8]
        if let configured = env["CHRONICLE_JWT_SECRET"], !configured.isEmpty {
            guard configured.utf8.count >= 32 else { throw ValidationError("CHRONICLE_JWT_SECRET must be at least 32 bytes") }
            secret = Array(configured.utf8)
        } else {
            var generator = SystemRandomNumberGenerator()
            secret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            logger.warning("CHRONICLE_JWT_SECRET is not set: tokens are signed with a key of this process only (they end with it, and other processes refuse them)")
        }
        var external: TokenService.Settings.External?
        if let issuer = env["CHRONICLE_JWT_EXTERNAL_ISSUER"], !issuer.isEmpty {
            let jwks = try file("CHRONICLE_JWT_EXTERNAL_JWKS")
            let pem = try file("CHRONICLE_JWT_EXTERNAL_PEM")
            guard jwks != nil || pem != nil else {
                throw ValidationError("CHRONICLE_JWT_EXTERNAL_ISSUER needs CHRONICLE_JWT_EXTERNAL_JWKS or CHRONICLE_JWT_EXTERNAL_PEM (a file)")
            }
            external = .init(issuer: issuer, jwks: jwks, pem: pem, audience: env["CHRONICLE_JWT_EXTERNAL_AUDIENCE"].flatMap { $0.isEmpty ? nil : $0 })
        }
        let ttl = try integer("CHRONICLE_JWT_TTL_SECONDS", 900)
        guard (60...86_400).contains(ttl) else { throw ValidationError("CHRONICLE_JWT_TTL_SECONDS must be 60 to 86400") }
        return IdentityConfiguration(
            tokens: .init(
                issuer: env["CHRONICLE_JWT_ISSUER"].flatMap { $0.isEmpty ? nil : $0 } ?? "chronicle", secret: secret, lifetime: .seconds(ttl),
                external: external),
            corsOrigins: (env["CHRONICLE_CORS_ORIGINS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
            rateLimits: .init(
                perTier: [
                    .free: try integer("CHRONICLE_RATE_LIMIT_FREE", 100), .pro: try integer("CHRONICLE_RATE_LIMIT_PRO", 1000),
                    .enterprise: try integer("CHRONICLE_RATE_LIMIT_ENTERPRISE", 0),
                ],
                executePerMinute: try integer("CHRONICLE_RATE_LIMIT_EXECUTE", 10)),
            loginsPerMinute: try integer("CHRONICLE_RATE_LIMIT_LOGIN", 10))
    }
}
