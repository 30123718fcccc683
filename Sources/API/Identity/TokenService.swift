import Commands
import Events
import Foundation
import JWTKit

/// The claims of an access token, local or from an outside identity provider.
struct AccessTokenClaims: JWTPayload {
    var iss: IssuerClaim
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iat: IssuedAtClaim?
    var aud: AudienceClaim?
    var tenant: String?
    var roles: [String]?
    var tier: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Why a token was refused; each is a 401 with its own code.
public enum TokenError: Error, Sendable, Equatable {
    case missing, malformed, unsupportedAlgorithm(String), unknownIssuer, expired, invalidSignature, wrongAudience

    var problem: Problem {
        let (code, detail): (String, String) =
            switch self {
            case .missing: ("auth.token_missing", "send a bearer token: Authorization: Bearer <token> (POST /api/v1/auth/token issues one)")
            case .malformed: ("auth.token_malformed", "the token is not a JWT")
            case .unsupportedAlgorithm(let alg): ("auth.token_algorithm", "tokens signed with '\(alg)' are not accepted")
            case .unknownIssuer: ("auth.token_issuer", "the token's issuer is not trusted")
            case .expired: ("auth.token_expired", "the token has expired; get a new one")
            case .invalidSignature: ("auth.token_invalid", "the token's signature does not verify")
            case .wrongAudience: ("auth.token_audience", "the token is not meant for this service")
            }
        return Problem(.unauthorized, code: code, detail: detail, headers: [.wwwAuthenticate: "Bearer"])
    }
}

/// A verified token's identity, before the user directory has its say.
public struct VerifiedToken: Sendable, Equatable {
    public var subject: String
    /// True for tokens this service issued: their user must exist here and be enabled.
    public var isLocal: Bool
    public var tenant: String?
    public var roles: [String]
    public var tier: String?
}

/// Issues local tokens (HS256 with the server's secret) and verifies them and those of one
/// configured outside issuer (RS256/ES256 keys from a JWKS or PEM file). Each issuer has its own
/// key set, chosen by the token's `iss` before any verification, so a key of one can never
/// verify a token claiming the other (no algorithm confusion), and `alg: none` has no key at all.
public actor TokenService {
    public struct Settings: Sendable {
        public var issuer: String
        public var secret: [UInt8]
        public var lifetime: Duration
        public var audience: String
        public var external: External?

        public struct External: Sendable {
            public var issuer: String
            /// A JWKS document, or a PEM public key (RSA or EC P-256).
            public var jwks: String?
            public var pem: String?
            public var audience: String?

            public init(issuer: String, jwks: String? = nil, pem: String? = nil, audience: String? = nil) {
                self.issuer = issuer
                self.jwks = jwks
                self.pem = pem
                self.audience = audience
            }
        }

        public init(issuer: String = "chronicle", secret: [UInt8], lifetime: Duration = .seconds(900), audience: String = "chronicle-api", external: External? = nil) {
            self.issuer = issuer
            self.secret = secret
            self.lifetime = lifetime
            self.audience = audience
            self.external = external
        }
    }

    static let acceptedAlgorithms: Set<String> = ["HS256", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]

    let settings: Settings
    let local = JWTKeyCollection()
    let outside = JWTKeyCollection()

    public init(settings: Settings) async throws {
        self.settings = settings
        await local.add(hmac: HMACKey(from: settings.secret), digestAlgorithm: .sha256)
        if let external = settings.external {
            if let jwks = external.jwks { try await outside.add(jwksJSON: jwks) }
            if let pem = external.pem {
                if pem.contains("BEGIN RSA PUBLIC KEY") || pem.contains("BEGIN PUBLIC KEY"), let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
                    await outside.add(rsa: rsa, digestAlgorithm: .sha256)
                } else {
                    await outside.add(ecdsa: try ES256PublicKey(pem: pem))
                }
            }
        }
    }

    public var lifetimeSeconds: Int { Int(settings.lifetime.components.seconds) }

    /// A token for a local user.
    public func issue(userID: String, tenant: String, roles: [String], tier: String, now: Date = Date()) async throws -> String {
        let claims = AccessTokenClaims(
            iss: .init(value: settings.issuer), sub: .init(value: userID),
            exp: .init(value: now.addingTimeInterval(TimeInterval(settings.lifetime.components.seconds))), iat: .init(value: now),
            aud: .init(value: [settings.audience]), tenant: tenant, roles: roles, tier: tier)
        return try await local.sign(claims)
    }

    public func verify(_ token: String) async throws -> VerifiedToken {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Self.json(parts[0]) else { throw TokenError.malformed }
        let alg = header["alg"] as? String ?? ""
        guard Self.acceptedAlgorithms.contains(alg), !parts[2].isEmpty else { throw TokenError.unsupportedAlgorithm(alg) }
        guard let body = Self.json(parts[1]), let issuer = body["iss"] as? String else { throw TokenError.malformed }
        let keys: JWTKeyCollection
        let audience: String?
        let isLocal: Bool
        if issuer == settings.issuer {
            guard alg == "HS256" else { throw TokenError.unsupportedAlgorithm(alg) }
            (keys, audience, isLocal) = (local, settings.audience, true)
        } else if let external = settings.external, issuer == external.issuer {
            guard alg != "HS256" else { throw TokenError.unsupportedAlgorithm(alg) }
            (keys, audience, isLocal) = (outside, external.audience, false)
        } else {
            throw TokenError.unknownIssuer
        }
        let claims: AccessTokenClaims
        do {
            claims = try await keys.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError {
            if error.errorType == .claimVerificationFailure { throw TokenError.expired }
            throw TokenError.invalidSignature
        } catch {
            throw TokenError.invalidSignature
        }
        if let audience {
            guard let aud = claims.aud, aud.value.contains(audience) else { throw TokenError.wrongAudience }
        }
        return VerifiedToken(subject: claims.sub.value, isLocal: isLocal, tenant: claims.tenant, roles: claims.roles ?? [], tier: claims.tier)
    }

    /// A base64url JSON object, or nil.
    static func json(_ part: Substring) -> [String: Any]? {
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }
}
