import Commands
import Events
import Foundation
import Projections

extension RedisProjectionStore {
    /// Marks a read model being cleared. It sorts before every formatted checkpoint, so the apply
    /// script answers "checkpoint moved" to every batch and writes nothing until the clear ends.
    static var clearing: String { "-rebuilding" }

    /// Clears the read model and replays it from position zero. Redis read models are caches in
    /// front of Postgres ones, so there is no shadow copy: while it replays, a read that misses
    /// the cache falls back to Postgres, and read-your-writes waits on the cache may time out and
    /// answer from Postgres. Safe beside a live runner in any process: the checkpoint is marked
    /// first, so the runner's batches are refused while the keys are deleted; then both replay
    /// through the same compare-and-set on the checkpoint, so each batch lands once, whoever
    /// applies it. Returns the new generation and the events this process replayed.
    public func rebuild(
        events: any EventStore, batchSize: Int = 2_000, progress: @Sendable (RebuildProgress) -> Void = { _ in }
    ) async throws -> (generation: Int, events: Int) {
        let clock = ContinuousClock()
        let started = clock.now
        let total = try await (events as? any LagProbe)?.eventsAfter(.start, cap: 100_000_000) ?? 0
        _ = try await redis.command("HSET", checkpointKey, "cp", Self.clearing)
        var cursor = "0"
        repeat {
            let reply = try await redis.command("SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000").array ?? []
            cursor = reply.first?.string ?? "0"
            let keys = (reply.dropFirst().first?.array ?? []).compactMap(\.string).filter { $0 != checkpointKey }
            if !keys.isEmpty { _ = try await redis.command(["DEL"] + keys) }
        } while cursor != "0"
        _ = try await redis.command("HSET", checkpointKey, "cp", Self.format(.start))
        let generation = Int(try await redis.command("HINCRBY", checkpointKey, "gen", "1").integer ?? 1)
        var checkpoint = Checkpoint.start
        var done = 0
        while true {
            let batch = try await events.readAll(after: checkpoint, limit: batchSize)
            guard let last = batch.last else { break }
            // An event the projection cannot handle is the live runner's to park.
            let writes = batch.flatMap { (try? projection.writes(for: $0)) ?? [] }
            let epoch = try await redis.command("HGET", checkpointKey, "epoch").integer ?? 0
            do {
                try await run(writes, after: checkpoint, through: last.checkpoint, epoch: epoch, force: false)
                checkpoint = last.checkpoint
            } catch ProjectionError.checkpointMoved, ProjectionError.fenced {
                // The live runner applied this stretch first: go on from where it is.
                checkpoint = max(try await self.checkpoint(), checkpoint)
            }
            done += batch.count
            progress(RebuildProgress(events: done, total: max(total, done), elapsed: started.duration(to: clock.now)))
        }
        return (generation, done)
    }
}
