import Commands
import Crypto
import CryptoExtras
import Foundation

/// scrypt from swift-crypto (BoringSSL's), stored in PHC format:
/// `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (base64 without padding). N = 2^15, r = 8 (32 MiB
/// per hash, tens of milliseconds) by default; verification reads the parameters from the
/// string, so they can be raised later without invalidating stored hashes.
public struct ScryptPasswordHasher: PasswordHasher {
    public let logN: Int
    public let blockSize: Int
    public let parallelism: Int

    public init(logN: Int = 15, blockSize: Int = 8, parallelism: Int = 1) {
        self.logN = logN
        self.blockSize = blockSize
        self.parallelism = parallelism
    }

    public func hash(_ password: String) async throws -> String {
        try await BlockingIO.run { try self.hashNow(password) }
    }

    public func verify(_ password: String, against stored: String) async -> Bool {
        (try? await BlockingIO.run { self.verifyNow(password, against: stored) }) ?? false
    }

    func hashNow(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let digest = try Self.derive(password, salt: salt, logN: logN, r: blockSize, p: parallelism)
        return "$scrypt$ln=\(logN),r=\(blockSize),p=\(parallelism)$\(Self.b64(salt))$\(Self.b64(digest))"
    }

    func verifyNow(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count == 4, parts[0] == "scrypt", let salt = Self.unb64(parts[2]), let expected = Self.unb64(parts[3]) else { return false }
        var params: [String: Int] = [:]
        for pair in parts[1].split(separator: ",") {
            let kv = pair.split(separator: "=")
            if kv.count == 2, let value = Int(kv[1]) { params[String(kv[0])] = value }
        }
        guard let ln = params["ln"], let r = params["r"], let p = params["p"], (10...20).contains(ln), (1...32).contains(r), (1...16).contains(p),
            let actual = try? Self.derive(password, salt: salt, logN: ln, r: r, p: p, length: expected.count)
        else { return false }
        // Constant time: every byte is compared whatever differs first.
        guard actual.count == expected.count else { return false }
        return zip(actual, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func derive(_ password: String, salt: [UInt8], logN: Int, r: Int, p: Int, length: Int = 32) throws -> [UInt8] {
        let key = try KDF.Scrypt.deriveKey(
            from: Array(password.utf8), salt: salt, outputByteCount: length, rounds: 1 << logN, blockSize: r, parallelism: p,
            maxMemory: 256 << 20)
        return key.withUnsafeBytes { Array($0) }
    }

    static func b64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    static func unb64(_ text: Substring) -> [UInt8]? {
        var padded = String(text)
        while padded.count % 4 != 0 { padded += "=" }
        return Data(base64Encoded: padded).map { [UInt8]($0) }
    }
}
