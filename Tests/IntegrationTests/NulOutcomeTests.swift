import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Testing

/// Issue 17, finding 5: `print('a\x00b')` ended `failed` ("interrupted 2 times"): Postgres refuses
/// `\u0000` in jsonb, the worker died writing the outcome, and the message was redelivered.
@Suite struct NulOutcomeTests {
    /// Strings a store must give back as they were given: a NUL, the escape marker (U+FDD0) at
    /// the start, percent signs beside both, and a NUL in a key.
    static let awkward = [
        "a\0b", "\0", "%00", "%25", "100%", String(Character(Unicode.Scalar(0xFDD0)!)) + "x%00\0",
        "plain", "", "mid\u{FFFD}dle",
        // A combining mark right after the marker, or before a NUL: one grapheme with what precedes.
        String(Character(Unicode.Scalar(0xFDD0)!)) + "\u{0301}x", "\u{0301}\0", "\u{0301}",
    ]

    @Test func aNulByteInAnEventIsStoredLosslessly() async throws {
        try await TestServers.withDatabase { database in
            var object: [String: JSONValue] = ["number": .number(1.5), "big": .number(9_007_199_254_740_991)]
            for (index, text) in Self.awkward.enumerated() { object["s\(index)"] = .string(text) }
            object["k\0ey"] = .array(Self.awkward.map(JSONValue.string))
            let data = try EventCoding.encode(JSONValue.object(object))
            let stream = "nul-\(UUID().uuidString.lowercased())"
            var metadata = EventMetadata()
            metadata.userID = "user\0with-nul"
            _ = try await database.eventStore.append(
                to: stream, expected: .noStream, events: [NewEvent(eventID: UUID(), eventType: "Probe", schemaVersion: 1, data: data, metadata: metadata)])
            let read = try await database.eventStore.readStream(stream, from: 1, direction: .forward, limit: 1)[0]
            #expect(try EventCoding.decode(JSONValue.self, from: read.data) == JSONValue.object(object), "read back \(String(decoding: read.data, as: UTF8.self))")
            #expect(read.metadata.userID == "user\0with-nul")
            // Stored readable: an ordinary string is what it was.
            let rows = try await database.client.query("SELECT data->>'s6' FROM events WHERE stream_id = \(stream)", logger: TestServers.logger)
            for try await plain in rows.decode(String.self) { #expect(plain == "plain") }
        }
    }

    @Test func theTextCodecIsOneToOne() {
        for text in Self.awkward {
            #expect(PostgresText.decode(PostgresText.encode(text)) == text)
            #expect(!PostgresText.encode(text).utf8.contains(0))
        }
        #expect(PostgresText.encode("plain") == "plain")
        #expect(Set(Self.awkward.map(PostgresText.encode)).count == Set(Self.awkward).count)
    }

    /// Data Postgres refuses for what it is (here invalid JSON) is a refusal, which a worker turns
    /// into a failure, never "unavailable", which it would retry.
    @Test func dataThePostgresStoreRefusesIsARefusalNotAnOutage() async throws {
        try await TestServers.withDatabase { database in
            let broken = Data(#"{"a": "\ud800"}"#.utf8)
            await #expect {
                _ = try await database.eventStore.append(
                    to: "refused-\(UUID())", expected: .any,
                    events: [NewEvent(eventID: UUID(), eventType: "Probe", schemaVersion: 1, data: broken, metadata: EventMetadata())])
            } throws: { error in
                if case EventStoreError.refused = error { return true }
                return false
            }
        }
    }

    @Test func aSandboxProgramPrintingANulByteCompletesOnceWithItsOutput() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let (id, done) = try await SandboxEndToEndTests.run(client, ["code": "print('a\\x00b')\nimport sys; sys.stderr.write('e\\x00')"])
                #expect(done.json["status"] as? String == "completed", "\(done.json)")
                #expect(done.json["output"] as? String == "a\0b\n")
                #expect(done.json["stderr"] as? String == "e\0")
                let events = try await database.eventStore.readStream("codeexecution-\(id)", from: 1, direction: .forward, limit: 10)
                #expect(events.map(\.eventType) == ["CodeExecutionRequested", "CodeExecutionStarted", "CodeExecutionCompleted"])
            }
        }
    }
}
