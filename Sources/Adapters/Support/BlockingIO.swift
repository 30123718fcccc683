import NIOPosix

/// The C clients (hiredis, rabbitmq-c) block. Their calls run on NIO's blocking-I/O thread pool,
/// never on an event loop.
enum BlockingIO {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
