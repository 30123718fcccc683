import CHiredis
import Foundation

/// One PING over a fresh hiredis connection: what `/health` reports for Redis.
public enum RedisProbe {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func ping(_ settings: RedisSettings, timeout: Duration = .seconds(2)) async throws {
        try await BlockingIO.run {
            let seconds = timeout.components.seconds
            let micros = timeout.components.attoseconds / 1_000_000_000_000
            guard let context = redisConnectWithTimeout(settings.host, Int32(settings.port), timeval(tv_sec: Int(seconds), tv_usec: Int(micros))) else {
                throw Failure(description: "could not allocate a redis context")
            }
            defer { redisFree(context) }
            if context.pointee.err != 0 {
                throw Failure(description: "connect failed: \(errorText(context))")
            }
            var timeoutValue = timeval(tv_sec: Int(seconds), tv_usec: Int(micros))
            redisSetTimeout(context, timeoutValue)
            _ = withUnsafeMutablePointer(to: &timeoutValue) { _ in 0 }
            if let password = settings.password {
                _ = try command(context, ["AUTH", password])
            }
            let reply = try command(context, ["PING"])
            guard reply == "PONG" else { throw Failure(description: "unexpected PING reply") }
        }
    }

    /// Runs one command through `redisCommandArgv` (the variadic form cannot be called from Swift).
    static func command(_ context: UnsafeMutablePointer<redisContext>, _ args: [String]) throws -> String? {
        var cStrings = args.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var lengths = args.map { $0.utf8.count }
        let raw = cStrings.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeMutableBufferPointer { lens in
                argv.withMemoryRebound(to: UnsafePointer<CChar>?.self) { argvConst in
                    redisCommandArgv(context, Int32(args.count), argvConst.baseAddress, lens.baseAddress)
                }
            }
        }
        guard let raw else { throw Failure(description: "command failed: \(errorText(context))") }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        switch reply.pointee.type {
        case REDIS_REPLY_ERROR: throw Failure(description: "redis error: \(String(cString: reply.pointee.str))")
        case REDIS_REPLY_STATUS, REDIS_REPLY_STRING: return String(cString: reply.pointee.str)
        default: return nil
        }
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
