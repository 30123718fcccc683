import Events
import Foundation
import Logging
import Projections

/// A Redis read model. Each batch's writes and its checkpoint go through one Lua script that
/// applies them only if the batch is past the stored checkpoint and the holder's epoch is not
/// older than the stored one. Keys live under `<keyspace>:rm:<projection>:`; the keyspace names
/// the deployment (by default its Postgres database), so deployments sharing a Redis never mix. Parked events are recorded in
/// Postgres first (idempotently), so a crash between the two only repeats the parking.
public struct RedisProjectionStore<P: RedisProjection>: ProjectionStore {
    public let projection: P
    let redis: RedisClient
    let parking: PostgresParkedEventStore
    let keyspace: String
    let logger: Logger

    public init(projection: P, redis: RedisClient, parking: PostgresParkedEventStore, keyspace: String, logger: Logger) {
        self.projection = projection
        self.redis = redis
        self.parking = parking
        self.keyspace = keyspace
        self.logger = logger
    }

    public var projectorName: String { projection.name }
    public var prefix: String { "\(keyspace):rm:\(projection.name):" }
    var checkpointKey: String { "\(prefix)_checkpoint" }

    public func prepareStorage() async throws {}

    public func writes(for event: RecordedEvent) throws -> [RedisWrite] {
        try projection.writes(for: event)
    }

    public func checkpoint() async throws -> Checkpoint {
        guard let text = try await redis.command("HGET", checkpointKey, "cp").string else { return .start }
        return Self.parse(text) ?? .start
    }

    public func apply(_ steps: [ProjectionStep<[RedisWrite]>], after: Checkpoint, through: Checkpoint, epoch: Int64) async throws {
        if steps.contains(where: { if case .apply = $0 { false } else { true } }) {
            try await parking.record(steps, projector: projection.name)
        }
        let writes = steps.flatMap { step -> [RedisWrite] in
            if case .apply(_, let writes) = step { return writes }
            return []
        }
        try await run(writes, after: after, through: through, epoch: epoch, force: false)
    }

    public func applyReleased(_ events: [(RecordedEvent, [RedisWrite])], epoch: Int64) async throws {
        try await run(events.flatMap(\.1), after: .start, through: .start, epoch: epoch, force: true)
        try await parking.forget(projector: projection.name, eventIDs: events.map(\.0.eventID))
    }

    func run(_ writes: [RedisWrite], after: Checkpoint, through: Checkpoint, epoch: Int64, force: Bool) async throws {
        var args = [String(epoch), Self.format(after), Self.format(through), force ? "1" : "0"]
        for write in writes {
            let (op, key, rest): (String, String, [String]) =
                switch write {
                case .hashSet(let key, let fields): ("HSET", key, fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] })
                case .delete(let key): ("DEL", key, [])
                case .expire(let key, let seconds): ("EXPIRE", key, [String(seconds)])
                case .setAdd(let key, let members): ("SADD", key, members)
                case .setRemove(let key, let members): ("SREM", key, members)
                }
            args += [op, prefix + key, String(rest.count)] + rest
        }
        let result = try await redis.eval(Self.script, keys: [checkpointKey], args: args)
        if result.integer == -1 { throw ProjectionError.fenced(projector: projection.name) }
        if result.integer == -2 { throw ProjectionError.checkpointMoved(projector: projection.name) }
    }

    /// 20-digit zero-padded parts: compared as strings in Lua, exact for 64-bit values (Lua
    /// numbers are doubles).
    static func format(_ checkpoint: Checkpoint) -> String {
        let tx = String(checkpoint.transactionID), pos = String(checkpoint.position)
        return String(repeating: "0", count: 20 - tx.count) + tx + "/" + String(repeating: "0", count: 20 - pos.count) + pos
    }

    static func parse(_ text: String) -> Checkpoint? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let tx = UInt64(parts[0]), let pos = Int64(parts[1]) else { return nil }
        return Checkpoint(transactionID: tx, position: pos)
    }

    static var script: RedisScript { RedisProjectionScript.script }
}

extension PostgresParkedEventStore {
    /// Records parked and held events outside any read-model transaction (Redis projections).
    func record<W>(_ steps: [ProjectionStep<W>], projector: String) async throws {
        try await client.withConnection { connection in
            try await Self.insert(steps, projector: projector, on: connection, logger: logger)
        }
    }
}

/// The apply script, outside the generic store (generic types cannot hold static stored values).
enum RedisProjectionScript {
    /// KEYS[1] checkpoint hash; ARGV: epoch, after, through, force, then per write: op, key, n, args.
    /// Returns 1 applied, 0 already applied (a replayed batch), -1 fenced, -2 the stored checkpoint
    /// is not `after` (lost, e.g. Redis restarted empty, or moved by another holder).
    static let script = RedisScript("""
        local stored = redis.call('HMGET', KEYS[1], 'cp', 'epoch')
        local epoch = tonumber(ARGV[1])
        if epoch < (tonumber(stored[2]) or 0) then return -1 end
        local force = ARGV[4] == '1'
        if not force then
          local current = stored[1] or '00000000000000000000/00000000000000000000'
          if ARGV[3] <= current then return 0 end
          if ARGV[2] ~= current then return -2 end
        end
        local i = 5
        while i <= #ARGV do
          local op, key, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
          local args = {}
          for j = 1, n do args[j] = ARGV[i + 2 + j] end
          if op == 'HSET' then redis.call('HSET', key, unpack(args))
          elseif op == 'DEL' then redis.call('DEL', key)
          elseif op == 'EXPIRE' then redis.call('EXPIRE', key, args[1])
          elseif op == 'SADD' then redis.call('SADD', key, unpack(args))
          elseif op == 'SREM' then redis.call('SREM', key, unpack(args))
          else return redis.error_reply('unknown write ' .. op) end
          i = i + 3 + n
        end
        if force then
          redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
        else
          redis.call('HSET', KEYS[1], 'cp', ARGV[3], 'epoch', ARGV[1])
        end
        return 1
        """)
}
