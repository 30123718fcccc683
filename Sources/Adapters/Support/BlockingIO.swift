import NIOPosix

/// The C clients (hiredis, rabbitmq-c) block. Their calls run on a thread pool of their own, never
/// on an event loop, and not on NIO's shared pool either: that one has a thread per core (two
/// here), and a few slow broker calls would starve everything else that uses it.
enum BlockingIO {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
