import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Lua script, called by its SHA-1 (`EVALSHA`) and loaded on the first `NOSCRIPT`.
public struct RedisScript: Sendable {
    public let source: String
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Data(source.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

/// Redis on SwiftNIO: a few connections, each carrying any number of requests at once (RESP
/// pipelining), read and written on the event loops. A call costs one hop to an event loop and one
/// back, not a blocking thread of its own (the hiredis pool this replaced held a thread for every
/// call in flight and queued callers behind eight connections; under 32 concurrent `GET`s its
/// p99 was twice the inline call's). A connection that fails or times out is closed, failing the
/// calls it carried, and the next call opens a new one: a Redis restart costs the calls in
/// flight, not the client.
public final class RedisClient: Sendable {
    public let settings: RedisSettings
    let connections: Int
    let timeout: Duration
    let logger: Logger

    private enum Slot {
        case empty
        case connecting(EventLoopFuture<any Channel>)
        case ready(any Channel)
    }

    private let slots: Mutex<[Slot]>
    private let next = Atomic<Int>(0)

    /// - Parameter poolSize: connections, each shared by every caller it is given to.
    public init(settings: RedisSettings, poolSize: Int = 2, timeout: Duration = .seconds(2), logger: Logger) {
        self.settings = settings
        connections = max(1, poolSize)
        self.timeout = timeout
        self.logger = logger
        slots = Mutex(Array(repeating: .empty, count: max(1, poolSize)))
    }

    deinit {
        slots.withLock { slots in
            for case .ready(let channel) in slots { channel.close(promise: nil) }
        }
    }

    public func command(_ args: String...) async throws -> RedisValue {
        try await command(args)
    }

    public func command(_ args: [String]) async throws -> RedisValue {
        try await send([args])[0].get()
    }

    /// Sends all commands in one round trip; replies in order. An error reply to one command does
    /// not stop the others; the first is thrown after all are read.
    public func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let replies = try await send(commands)
        return try replies.map { try $0.get() }
    }

    /// Runs a script by SHA-1, loading it first if this server does not know it yet.
    public func eval(_ script: RedisScript, keys: [String], args: [String]) async throws -> RedisValue {
        let tail = [String(keys.count)] + keys + args
        do {
            return try await command(["EVALSHA", script.sha1] + tail)
        } catch let error as RedisError where error.code == .noScript {
            return try await command(["EVAL", script.source] + tail)
        }
    }

    private func send(_ commands: [[String]]) async throws -> [RESP.Reply] {
        let channel = try await channel(next.wrappingAdd(1, ordering: .relaxed).oldValue % connections)
        return try await Self.send(commands, on: channel, timeout: timeout)
    }

    /// Writes a request and waits for its replies. A request that times out closes its
    /// connection: a reply arriving later would belong to no one and shift every reply after it.
    private static func send(_ commands: [[String]], on channel: any Channel, timeout: Duration) async throws -> [RESP.Reply] {
        let promise = channel.eventLoop.makePromise(of: [RESP.Reply].self)
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(RedisError(.connection, "no reply within \(timeout)"))
            channel.close(promise: nil)
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        let written = channel.eventLoop.makePromise(of: Void.self)
        // A write the channel refuses (it closed meanwhile) never reaches the handler's queue.
        written.futureResult.whenFailure { error in promise.fail(error as? RedisError ?? RedisError(.connection, "send failed: \(error)")) }
        channel.writeAndFlush(RedisRequestHandler.Request(commands: commands, promise: promise), promise: written)
        return try await promise.futureResult.get()
    }

    /// The slot's open connection, opening one (and authenticating it) if it has none.
    private func channel(_ index: Int) async throws -> any Channel {
        let (future, opened): (EventLoopFuture<any Channel>, Bool) = slots.withLock { slots in
            switch slots[index] {
            case .ready(let channel) where channel.isActive:
                return (channel.eventLoop.makeSucceededFuture(channel), false)
            case .connecting(let future):
                return (future, false)
            default:
                if case .ready = slots[index] { logger.warning("redis connection broken; opening a new one") }
                let future = open()
                slots[index] = .connecting(future)
                return (future, true)
            }
        }
        if opened {
            future.whenComplete { [weak self] result in
                self?.slots.withLock { slots in
                    guard case .connecting(let pending) = slots[index], pending === future else { return }
                    switch result {
                    case .success(let channel): slots[index] = .ready(channel)
                    case .failure: slots[index] = .empty
                    }
                }
            }
        }
        do {
            return try await future.get()
        } catch let error as RedisError {
            throw error
        } catch {
            throw RedisError(.connection, "connect to \(settings.host):\(settings.port) failed: \(error)")
        }
    }

    private func open() -> EventLoopFuture<any Channel> {
        let settings = settings, timeout = timeout
        let connected = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RedisRequestHandler())
                }
            }
            .connect(host: settings.host, port: settings.port)
        return connected.flatMap { channel in
            var hello: [[String]] = []
            if let password = settings.password { hello.append(["AUTH", password]) }
            if settings.database != 0 { hello.append(["SELECT", String(settings.database)]) }
            guard !hello.isEmpty else { return channel.eventLoop.makeSucceededFuture(channel) }
            let commands = hello
            let promise = channel.eventLoop.makePromise(of: (any Channel).self)
            promise.completeWithTask {
                for reply in try await Self.send(commands, on: channel, timeout: timeout) {
                    if case .failure(let error) = reply {
                        channel.close(promise: nil)
                        throw error
                    }
                }
                return channel
            }
            return promise.futureResult
        }
    }
}
