import Foundation

extension UUID {
    /// A random (version 4) UUID from the system's generator (`getrandom(2)` on Linux, no file).
    /// Foundation's `UUID()` on Linux opens, reads and closes `/dev/urandom` for every id: three
    /// system calls and a descriptor, which `strace` showed once per request on a server answering
    /// GETs (the request id).
    public static func random() -> UUID {
        var generator = SystemRandomNumberGenerator()
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &bytes) { buffer in
            buffer.storeBytes(of: generator.next() as UInt64, toByteOffset: 0, as: UInt64.self)
            buffer.storeBytes(of: generator.next() as UInt64, toByteOffset: 8, as: UInt64.self)
        }
        bytes.6 = (bytes.6 & 0x0F) | 0x40  // version 4
        bytes.8 = (bytes.8 & 0x3F) | 0x80  // RFC variant
        return UUID(uuid: bytes)
    }
}
