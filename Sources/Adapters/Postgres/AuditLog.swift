import Commands
import Events
import Crypto
import Foundation
import Logging
import PostgresNIO

/// The tamper-evident log (migration 0006): each event's hash chained to the one before it in its
/// stream, and signed checkpoints over the whole log in the subscribers' safe order.
///
/// The append computes the chain in SQL; `EventHash` computes the same bytes here, so `verify`
/// never trusts a function stored in the database it checks.
public enum EventHash {
    /// sha256(prev ‖ each field as "<octet length>:<text>"), the fields as Postgres prints them.
    public static func compute(
        prev: Data, streamID: String, version: Int64, eventID: String, eventType: String, schemaVersion: Int,
        recordedMicros: Int64, data: String, metadata: String
    ) -> Data {
        var hasher = SHA256()
        hasher.update(data: prev)
        for field in [streamID, String(version), eventID, eventType, String(schemaVersion), String(recordedMicros), data, metadata] {
            hasher.update(data: Data("\(field.utf8.count):\(field)".utf8))
        }
        return Data(hasher.finalize())
    }
}

/// The Ed25519 key checkpoints are signed with (`chronicle.audit.signing_key`, 32 bytes in
/// base64), or only its public half, which is enough to verify.
public struct CheckpointKey: Sendable {
    public let publicKey: Curve25519.Signing.PublicKey
    let privateKey: Curve25519.Signing.PrivateKey?

    public init(signingKeyBase64 text: String) throws {
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw AuditLogError("the audit signing key must be 32 bytes in base64 (head -c 32 /dev/urandom | base64)") }
        privateKey = key
        publicKey = key.publicKey
    }

    public init(publicKeyBase64 text: String) throws {
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw AuditLogError("the audit verify key must be an Ed25519 public key (32 bytes) in base64") }
        privateKey = nil
        publicKey = key
    }

    /// Names the key in each checkpoint: the first 8 bytes of sha256(public key), in hex.
    public var id: String { SHA256.hash(data: publicKey.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined() }
    public var publicKeyBase64: String { publicKey.rawRepresentation.base64EncodedString() }
}

public struct AuditLogError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One signed checkpoint.
public struct AuditCheckpoint: Sendable, Equatable {
    public var sequence: Int64
    public var end: Checkpoint
    public var eventCount: Int64
    public var digest: Data
    public var keyID: String
    public var signature: Data

    /// The signed bytes: every field but the signature, unambiguously.
    var message: Data {
        Data("chronicle-checkpoint-v1|\(sequence)|\(end.transactionID)|\(end.position)|\(eventCount)|\(digest.base64EncodedString())|\(keyID)".utf8)
    }
}

/// What `verify` found wrong, the first of each kind it checks.
public struct AuditFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable { case altered, missing, checkpoint }
    public var kind: Kind
    public var streamID: String?
    public var version: Int64?
    public var detail: String

    public init(kind: Kind, streamID: String? = nil, version: Int64? = nil, detail: String) {
        self.kind = kind
        self.streamID = streamID
        self.version = version
        self.detail = detail
    }

    public var description: String {
        let place = streamID.map { stream in version.map { "\(stream) v\($0)" } ?? stream } ?? "log"
        return "\(kind.rawValue): \(place): \(detail)"
    }
}

public struct AuditVerification: Sendable {
    public var streams = 0
    public var events = 0
    public var checkpoints = 0
    /// Events after the newest checkpoint: chained, not yet signed.
    public var eventsAfterLastCheckpoint = 0
    /// False when no key was configured: the checkpoints' digests were checked, their signatures not.
    public var signaturesChecked = false
    public var findings: [AuditFinding] = []
    public var clean: Bool { findings.isEmpty }
}

public struct PostgresAuditLog: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// Events read per round trip.
    public var pageSize = 2000

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: Checkpoints

    /// Takes the next checkpoint over every event committed since the last one (in safe order,
    /// so a transaction still open is covered by a later checkpoint, never skipped). At most
    /// `maximumEvents` per checkpoint; nil when there was nothing new. Two processes may race:
    /// the sequence's key settles it and the loser takes none.
    @discardableResult
    public func takeCheckpoint(key: CheckpointKey, maximumEvents: Int = 100_000) async throws -> AuditCheckpoint? {
        guard let privateKey = key.privateKey else { throw AuditLogError("taking a checkpoint needs the signing key, not only the public one") }
        let last = try await newestCheckpoint()
        var digest = last?.digest ?? Data()
        var end = last?.end ?? Checkpoint(transactionID: 0, position: 0)
        var count: Int64 = 0
        while count < maximumEvents {
            let page = try await hashes(after: end, limit: min(pageSize, maximumEvents - Int(count)))
            if page.isEmpty { break }
            for row in page { digest = Self.fold(digest, row.hash) }
            end = page[page.count - 1].key
            count += Int64(page.count)
        }
        guard count > 0 else { return nil }
        var checkpoint = AuditCheckpoint(
            sequence: (last?.sequence ?? 0) + 1, end: end, eventCount: count, digest: digest, keyID: key.id, signature: Data())
        checkpoint.signature = try privateKey.signature(for: checkpoint.message)
        do {
            try await client.query("""
                INSERT INTO audit_checkpoints (sequence, transaction_id, global_position, event_count, digest, key_id, signature)
                VALUES (\(checkpoint.sequence), \(String(end.transactionID))::xid8, \(end.position), \(count), \(digest), \(key.id), \(checkpoint.signature))
                """, logger: logger)
        } catch where PostgresErrors.sqlState(error) == PostgresErrors.uniqueViolation {
            return nil
        }
        return checkpoint
    }

    static func fold(_ digest: Data, _ hash: Data) -> Data {
        var hasher = SHA256()
        hasher.update(data: digest)
        hasher.update(data: hash)
        return Data(hasher.finalize())
    }

    /// The newest checkpoint only: what the next one continues from, in one index probe.
    func newestCheckpoint() async throws -> AuditCheckpoint? {
        try await checkpoints(
            """
            SELECT sequence, transaction_id::text, global_position, event_count, digest, key_id, signature
            FROM audit_checkpoints ORDER BY sequence DESC LIMIT 1
            """
        ).first
    }

    public func checkpoints(after sequence: Int64?) async throws -> [AuditCheckpoint] {
        try await checkpoints("""
            SELECT sequence, transaction_id::text, global_position, event_count, digest, key_id, signature
            FROM audit_checkpoints WHERE sequence > \(sequence ?? 0) ORDER BY sequence
            """)
    }

    private func checkpoints(_ query: PostgresQuery) async throws -> [AuditCheckpoint] {
        var found: [AuditCheckpoint] = []
        let rows = try await client.query(query, logger: logger)
        for try await (sequence, transaction, position, count, digest, keyID, signature) in rows.decode(
            (Int64, String, Int64, Int64, Data, String, Data).self)
        {
            found.append(.init(
                sequence: sequence, end: Checkpoint(transactionID: UInt64(transaction) ?? 0, position: position), eventCount: count,
                digest: digest, keyID: keyID, signature: signature))
        }
        return found
    }

    private func hashes(after key: Checkpoint, limit: Int) async throws -> [(key: Checkpoint, hash: Data)] {
        var page: [(key: Checkpoint, hash: Data)] = []
        // `events.` in ORDER BY: unqualified, `transaction_id` names the text output column,
        // which sorts 9813 after 10082, and the keyset pages overlapped where transaction ids
        // gained a digit (a checkpoint counted 19 of 13 events).
        let rows = try await client.query("""
            SELECT transaction_id::text, global_position, hash FROM events
            WHERE (transaction_id, global_position) > (\(String(key.transactionID))::xid8, \(key.position))
              AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY events.transaction_id, events.global_position LIMIT \(Int64(limit))
            """, logger: logger)
        for try await (transaction, position, hash) in rows.decode((String, Int64, Data).self) {
            page.append((Checkpoint(transactionID: UInt64(transaction) ?? 0, position: position), hash))
        }
        return page
    }

    // MARK: Verification

    /// Walks every stream's chain (or one stream's) and, for the whole log, the checkpoints.
    /// Reports the first wrong event of each stream, and the first checkpoint that does not hold.
    /// A deleted last event of a stream, or a deleted stream, leaves no gap in any chain: the
    /// checkpoints find those.
    public func verify(stream: String? = nil, key: CheckpointKey?) async throws -> AuditVerification {
        var result = AuditVerification()
        try await verifyChains(stream: stream, into: &result)
        if stream == nil { try await verifyCheckpoints(key: key, into: &result) }
        return result
    }

    private struct ChainRow {
        var streamID: String
        var version: Int64
        var eventID: String
        var type: String
        var schemaVersion: Int
        var micros: Int64
        var data: String
        var metadata: String
        var hash: Data

        func hash(after prev: Data) -> Data {
            EventHash.compute(
                prev: prev, streamID: streamID, version: version, eventID: eventID, eventType: type, schemaVersion: schemaVersion,
                recordedMicros: micros, data: data, metadata: metadata)
        }
    }

    private func chainPage(stream: String?, after: (String, Int64)) async throws -> [ChainRow] {
        let select = """
            SELECT stream_id, stream_version, event_id::text, event_type, schema_version,
                   (extract(epoch FROM recorded_at) * 1000000)::bigint, data::text, metadata::text, hash
            FROM events
            """
        let rows =
            if let stream {
                try await client.query("""
                    \(unescaped: select) WHERE stream_id = \(stream) AND stream_version > \(after.1)
                    ORDER BY stream_version LIMIT \(Int64(pageSize))
                    """, logger: logger)
            } else {
                try await client.query("""
                    \(unescaped: select) WHERE (stream_id, stream_version) > (\(after.0), \(after.1))
                    ORDER BY stream_id, stream_version LIMIT \(Int64(pageSize))
                    """, logger: logger)
            }
        var page: [ChainRow] = []
        for try await (stream, version, id, type, schema, micros, data, metadata, hash) in rows.decode(
            (String, Int64, String, String, Int32, Int64, String, String, Data).self)
        {
            page.append(.init(
                streamID: stream, version: version, eventID: id, type: type, schemaVersion: Int(schema), micros: micros, data: data,
                metadata: metadata, hash: hash))
        }
        return page
    }

    private func verifyChains(stream only: String?, into result: inout AuditVerification) async throws {
        var cursor = ("", Int64(0))
        var current: String?
        var prev = Data()
        var expected: Int64 = 1
        var broken = false
        while true {
            let page = try await chainPage(stream: only, after: cursor)
            if page.isEmpty { break }
            for row in page {
                if row.streamID != current {
                    current = row.streamID
                    prev = Data()
                    expected = 1
                    broken = false
                    result.streams += 1
                }
                result.events += 1
                defer {
                    prev = row.hash
                    expected = row.version + 1
                }
                guard !broken else { continue }
                if row.hash(after: prev) == row.hash { continue }
                broken = true
                if row.version != expected {
                    result.findings.append(.init(
                        kind: .missing, streamID: row.streamID, version: expected,
                        detail: expected == row.version - 1
                            ? "version \(expected) is missing (the stream goes from \(expected - 1) to \(row.version))"
                            : "versions \(expected)–\(row.version - 1) are missing"))
                } else {
                    result.findings.append(.init(
                        kind: .altered, streamID: row.streamID, version: row.version,
                        detail: "its stored fields (type, payload, metadata, time or place in the stream) do not match its hash"))
                }
            }
            let last = page[page.count - 1]
            cursor = (last.streamID, last.version)
        }
    }

    private func verifyCheckpoints(key: CheckpointKey?, into result: inout AuditVerification) async throws {
        let checkpoints = try await checkpoints(after: nil)
        result.checkpoints = checkpoints.count
        var digest = Data()
        var cursor = Checkpoint(transactionID: 0, position: 0)
        for (index, checkpoint) in checkpoints.enumerated() {
            guard checkpoint.sequence == Int64(index + 1) else {
                result.findings.append(.init(
                    kind: .checkpoint, detail: "checkpoint \(index + 1) is missing (the next one is \(checkpoint.sequence))"))
                return
            }
            if let key {
                guard checkpoint.keyID == key.id, key.publicKey.isValidSignature(checkpoint.signature, for: checkpoint.message) else {
                    result.findings.append(.init(
                        kind: .checkpoint,
                        detail: "checkpoint \(checkpoint.sequence)'s signature does not verify with key \(key.id) (signed by \(checkpoint.keyID))"))
                    return
                }
            }
            var count: Int64 = 0
            while true {
                let fetched = try await hashes(after: cursor, limit: pageSize)
                let page = fetched.filter { $0.key <= checkpoint.end }
                for row in page { digest = Self.fold(digest, row.hash) }
                count += Int64(page.count)
                if let last = page.last { cursor = last.key }
                if page.count < pageSize { break }
            }
            cursor = checkpoint.end
            guard count == checkpoint.eventCount, digest == checkpoint.digest else {
                let what =
                    count < checkpoint.eventCount
                    ? "\(checkpoint.eventCount - count) of its \(checkpoint.eventCount) events are gone: an event or a whole stream was deleted"
                    : count > checkpoint.eventCount
                        ? "it covered \(checkpoint.eventCount) events and the log now holds \(count) there: events were inserted"
                        : "an event it covered was changed or re-chained"
                result.findings.append(.init(
                    kind: .checkpoint,
                    detail: "checkpoint \(checkpoint.sequence) (up to \(checkpoint.end)) does not hold: \(what)"))
                return
            }
            digest = checkpoint.digest
        }
        result.signaturesChecked = key != nil
        var after = 0
        while true {
            let page = try await hashes(after: cursor, limit: pageSize)
            if page.isEmpty { break }
            after += page.count
            cursor = page[page.count - 1].key
        }
        result.eventsAfterLastCheckpoint = after
    }
}
