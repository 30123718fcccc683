import Commands
import Events
import Foundation
import JWTKit
import Synchronization

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

    /// Tokens verified before, until they expire: a token's signature cannot change, and the keys
    /// are fixed for the life of the process, so verifying it again would give the same answer
    /// but for its expiry, which every hit checks. Parsing and checking a JWT was most of an
    /// authenticated read's work. Bounded; a full cache first forgets expired tokens, then all.
    nonisolated let verified = VerifiedTokenCache(capacity: 10_000)

    /// Verifies a token, or answers from the tokens verified before (without entering the actor).
    public nonisolated func verify(_ token: String, now: Date = Date()) async throws -> VerifiedToken {
        if let hit = verified.lookup(token, now: now) { return hit }
        let (result, expires) = try await verifyUncached(token)
        verified.store(token, result, expires: expires, now: now)
        return result
    }

    func verifyUncached(_ token: String) async throws -> (VerifiedToken, Date) {
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
        return (VerifiedToken(subject: claims.sub.value, isLocal: isLocal, tenant: claims.tenant, roles: claims.roles ?? [], tier: claims.tier), claims.exp.value)
    }

    /// A base64url JSON object, or nil.
    static func json(_ part: Substring) -> [String: Any]? {
        var text = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }
}

/// Verified tokens by their text, each until its expiry (see `TokenService.verified`).
final class VerifiedTokenCache: Sendable {
    private let entries = Mutex<[String: (token: VerifiedToken, expires: Date)]>([:])
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func lookup(_ token: String, now: Date) -> VerifiedToken? {
        entries.withLock { entries in
            guard let entry = entries[token] else { return nil }
            // Expired (as the verifier would have said): forget it, and verify again to say why.
            guard entry.expires > now else {
                entries[token] = nil
                return nil
            }
            return entry.token
        }
    }

    func store(_ token: String, _ verified: VerifiedToken, expires: Date, now: Date) {
        entries.withLock { entries in
            if entries.count >= capacity { entries = entries.filter { $0.value.expires > now } }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = (verified, expires)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}
