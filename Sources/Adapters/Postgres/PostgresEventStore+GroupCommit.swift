import Commands
import Events
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Group commit for single-event appends.
///
/// Under concurrency, one-event appends from different callers in this process share one
/// statement (one transaction, one WAL flush, one NOTIFY) instead of paying a commit each. The
/// first caller with nothing in flight goes at once, alone: a lone append waits for nobody. While
/// a group commits, later callers queue, and the next group takes them all.
///
/// Each append keeps its own guarantees:
/// - its expected version is checked on its own row (the statement's `WHERE`, per row);
/// - it is acknowledged only after the statement that holds it has committed;
/// - a group holds at most one append per stream (the statement cannot see its own rows, so two
///   appends to one stream would both take the same version); a second one waits for the next;
/// - `ON CONFLICT DO NOTHING` turns a lost race (a version another process took, an event id
///   stored before) into a row not returned, for that append alone, which then resolves it as a
///   lone append would: a duplicate, or a version conflict. The others in the group commit.
/// - a statement refused for its data (one event the server will not store) is retried one
///   append at a time, so only the append at fault fails.
final class AppendGroups: Sendable {
    struct Request: Sendable {
        let streamID: String
        let expected: ExpectedVersion
        let event: NewEvent
    }

    /// What became of one request in its group.
    enum Outcome: Sendable {
        case written(position: Int64, version: Int64, transaction: String)
        /// Not inserted: a version conflict or a repeated event id, resolved by the caller.
        case rejected
        case failed(any Error)
    }

    private struct Waiting {
        let request: Request
        let done: CheckedContinuation<Outcome, Never>
    }

    private struct State {
        var queue: [Waiting] = []
        var inFlight = 0
        var largest = 0
        var groups = 0
        var grouped = 0
    }

    private let state = Mutex(State())
    let client: PostgresClient
    let logger: Logger
    let chained: Bool
    /// Groups committing at once, each on its own connection. Two measured better than one (4,900
    /// against 4,300 events/s, 8 writers, fsync on): one group's round trip overlaps the other's.
    let maxInFlight: Int
    let maxGroup: Int

    init(client: PostgresClient, logger: Logger, chained: Bool, maxInFlight: Int = 2, maxGroup: Int = 256) {
        self.client = client
        self.logger = logger
        self.chained = chained
        self.maxInFlight = max(1, maxInFlight)
        self.maxGroup = max(1, maxGroup)
    }

    /// Groups committed, appends they held, and the largest group so far.
    var stats: (groups: Int, appends: Int, largest: Int) { state.withLock { ($0.groups, $0.grouped, $0.largest) } }

    func submit(_ request: Request) async -> Outcome {
        await withCheckedContinuation { continuation in
            let group: [Waiting]? = state.withLock { state in
                state.queue.append(Waiting(request: request, done: continuation))
                guard state.inFlight < maxInFlight else { return nil }
                state.inFlight += 1
                return take(&state)
            }
            if let group { Task { await drain(starting: group) } }
        }
    }

    /// Commits `group`, then whatever queued meanwhile, until the queue is empty.
    private func drain(starting group: [Waiting]) async {
        var group = group
        while !group.isEmpty {
            let outcomes = await commit(group.map(\.request))
            for (waiting, outcome) in zip(group, outcomes) { waiting.done.resume(returning: outcome) }
            group = state.withLock { state in
                let next = take(&state)
                if next.isEmpty { state.inFlight -= 1 }
                return next
            }
        }
    }

    /// The next group: queued requests in order, one per stream, at most `maxGroup`.
    private func take(_ state: inout State) -> [Waiting] {
        var group: [Waiting] = []
        var left: [Waiting] = []
        var streams = Set<String>()
        for waiting in state.queue {
            if group.count < maxGroup, streams.insert(waiting.request.streamID).inserted {
                group.append(waiting)
            } else {
                left.append(waiting)
            }
        }
        state.queue = left
        if !group.isEmpty {
            state.groups += 1
            state.grouped += group.count
            state.largest = max(state.largest, group.count)
        }
        return group
    }

    /// One statement for the group; if the server refuses its data, one statement per request.
    func commit(_ requests: [Request]) async -> [Outcome] {
        do {
            return try await insert(requests)
        } catch where requests.count > 1 && PostgresErrors.isDataRefusal(error) {
            var outcomes: [Outcome] = []
            for request in requests {
                do { outcomes += try await insert([request]) } catch { outcomes.append(.failed(error)) }
            }
            return outcomes
        } catch {
            return requests.map { _ in .failed(error) }
        }
    }

    /// One row per request, each with its own version check; the `events_chain` trigger chains
    /// each row's hash (the benchmark's unchained appends store an empty one instead).
    static func insertSQL(hash: String) -> String {
        """
        INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, hash)
        SELECT t.stream, head.version + 1, t.id, t.type, t.version, t.data::jsonb, t.meta::jsonb, \(hash)
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::int8[], $8::bool[])
               WITH ORDINALITY AS t(stream, id, type, version, data, meta, exact, must_exist, ord)
        CROSS JOIN LATERAL (SELECT COALESCE(max(e.stream_version), 0) AS version FROM events e WHERE e.stream_id = t.stream) AS head
        WHERE (t.exact < 0 OR head.version = t.exact) AND (NOT t.must_exist OR head.version > 0)
        ORDER BY t.ord
        ON CONFLICT DO NOTHING
        RETURNING event_id, stream_id, global_position, stream_version, transaction_id::text
        """
    }

    enum ChainedInsert: PreparedSQL {
        static let sql = insertSQL(hash: "NULL::bytea")
    }

    enum UnchainedInsert: PreparedSQL {
        static let sql = insertSQL(hash: "'\\x'::bytea")
    }

    private func insert(_ requests: [Request]) async throws -> [Outcome] {
        var streams: [String] = [], ids: [UUID] = [], types: [String] = [], versions: [Int32] = []
        var data: [String] = [], metadata: [String] = [], exact: [Int64] = [], mustExist: [Bool] = []
        for request in requests {
            streams.append(request.streamID)
            ids.append(request.event.eventID)
            types.append(request.event.eventType)
            versions.append(Int32(request.event.schemaVersion))
            // Strings Postgres would refuse (U+0000) are stored escaped and restored on read.
            data.append(String(decoding: PostgresText.encodeJSON(request.event.data), as: UTF8.self))
            metadata.append(String(decoding: PostgresText.encodeJSON(try EventCoding.encode(request.event.metadata)), as: UTF8.self))
            // -1: no version expected (versions are never negative).
            switch request.expected {
            case .any: exact.append(-1); mustExist.append(false)
            case .noStream: exact.append(0); mustExist.append(false)
            case .streamExists: exact.append(-1); mustExist.append(true)
            case .exact(let version): exact.append(version); mustExist.append(false)
            }
        }
        func bind(_ bindings: inout PostgresBindings) {
            bindings.append(streams)
            bindings.append(ids)
            bindings.append(types)
            bindings.append(versions)
            bindings.append(data)
            bindings.append(metadata)
            bindings.append(exact)
            bindings.append(mustExist)
        }
        let rows = chained
            ? try await client.execute(Prepared<ChainedInsert>(bind), logger: logger)
            : try await client.execute(Prepared<UnchainedInsert>(bind), logger: logger)
        var written: [UUID: (stream: String, outcome: Outcome)] = [:]
        for try await (id, stream, position, version, transaction) in rows.decode((UUID, String, Int64, Int64, String).self) {
            written[id] = (stream, .written(position: position, version: version, transaction: transaction))
        }
        return requests.map { request in
            guard let row = written[request.event.eventID], row.stream == request.streamID else { return .rejected }
            return row.outcome
        }
    }
}
