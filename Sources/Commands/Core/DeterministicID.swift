import Crypto
import Foundation

/// Name-based UUIDs (RFC 9562 version 5): the same name always gives the same id. Event ids are
/// derived from their command's id this way, which is what makes a repeated command append nothing.
public enum DeterministicID {
    /// The namespace of Chronicle's event ids (itself a v5 UUID of "chronicle.events" in the URL namespace).
    public static let eventNamespace = UUID(uuidString: "1b671a64-40d5-491e-99b0-da01ff1f3341")!

    public static func v5(namespace: UUID, name: String) -> UUID {
        var hasher = Insecure.SHA1()
        withUnsafeBytes(of: namespace.uuid) { hasher.update(bufferPointer: $0) }
        hasher.update(data: Data(name.utf8))
        var bytes = Array(hasher.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC variant
        return UUID(uuid: (
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
            bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
        ))
    }
}
