import Foundation
import Testing

@testable import Events

@Suite struct CheckpointTests {
    @Test func ordersByTransactionThenPosition() {
        // A later position in an earlier transaction comes first: that is the safe read order.
        #expect(Checkpoint(transactionID: 5, position: 100) < Checkpoint(transactionID: 6, position: 3))
        #expect(Checkpoint(transactionID: 6, position: 3) < Checkpoint(transactionID: 6, position: 4))
        #expect(Checkpoint.start < Checkpoint(transactionID: 1, position: 1))
    }

    @Test func printsAndParsesTheSameForm() {
        let checkpoint = Checkpoint(transactionID: 812, position: 44)
        #expect(checkpoint.description == "812/44")
        #expect(Checkpoint("812/44") == checkpoint)
        #expect(Checkpoint("812") == nil)
        #expect(Checkpoint("a/b") == nil)
    }

    @Test func metadataUsesSnakeCaseKeys() throws {
        let metadata = EventMetadata(correlationID: "c", causationID: "k", commandID: "m", userID: "u", tenantID: "t")
        let json = String(decoding: try EventCoding.encode(metadata), as: UTF8.self)
        #expect(json == #"{"causation_id":"k","command_id":"m","correlation_id":"c","tenant_id":"t","user_id":"u"}"#)
        #expect(try EventCoding.decode(EventMetadata.self, from: Data(json.utf8)) == metadata)
    }

    /// The payload decoder remembers each key's conversion; it must convert exactly as
    /// Foundation's `convertFromSnakeCase` does, on the first sight of a key and from memory.
    @Test func keysConvertAsFoundationConvertsThem() throws {
        struct Keys: Decodable, Equatable {
            let keys: [String]
            let nested: [String]
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: SnakeCaseKeys.Key.self)
                keys = container.allKeys.map(\.stringValue).sorted()
                nested = try container.allKeys.first { $0.stringValue == "inner" }
                    .map { try container.decode(Inner.self, forKey: $0).keys } ?? []
            }
        }
        struct Inner: Decodable {
            let keys: [String]
            init(from decoder: any Decoder) throws {
                keys = try decoder.container(keyedBy: SnakeCaseKeys.Key.self).allKeys.map(\.stringValue).sorted()
            }
        }
        let names = [
            "agent_id", "max_tokens", "plain", "camelCase", "_leading", "trailing_", "__both__", "a__b", "mixed_CASE_words",
            "with_2fa_code", "_", "__", "HTTP_url", "ünï_côde", "x_y_z", "already_camelCase_tail", "id_",
        ]
        let object = Dictionary(uniqueKeysWithValues: names.map { ($0, 0) })
        var document: [String: Any] = object
        document["inner"] = object
        let json = try JSONSerialization.data(withJSONObject: document)
        let foundation = JSONDecoder()
        foundation.keyDecodingStrategy = .convertFromSnakeCase
        let expected = try foundation.decode(Keys.self, from: json)
        #expect(expected.keys.contains("agentId") && expected.nested.contains("maxTokens"))
        // Twice: the second time every key comes from memory.
        #expect(try EventCoding.makeDecoder().decode(Keys.self, from: json) == expected)
        #expect(try EventCoding.makeDecoder().decode(Keys.self, from: json) == expected)
    }

    @Test func streamIDSplitsAtTheFirstDash() {
        let id = StreamID("agent-6f9619ff-8b86")
        #expect(id?.category == "agent")
        #expect(id?.id == "6f9619ff-8b86")
        #expect(StreamID("nodash") == nil)
    }

    @Test func timestampsKeepMilliseconds() throws {
        let date = Date(timeIntervalSince1970: 1_767_607_200.123)
        let text = Timestamp.format(date)
        #expect(text == "2026-01-05T10:00:00.123Z")
        let parsed = try #require(Timestamp.parse(text))
        #expect(abs(parsed.timeIntervalSince(date)) < 0.001)
    }

    /// `format` writes its digits by hand: it says what `String(format:)` over `gmtime_r` says,
    /// over 20,000 seeded instants from 1900 to 2100, before 1970 among them, and the edges.
    @Test func theHandWrittenTimestampSaysWhatTheFormatterSays() {
        var generator = SystemRandomNumberGenerator()
        var seeded = (0..<20_000).map { _ in Int64.random(in: -2_208_988_800_000..<4_102_444_800_000, using: &generator) }
        seeded += [0, -1, 999, 1_000, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_999]  // up to 9999-12-31T23:59:59.999Z
        for millis in seeded {
            let date = Date(timeIntervalSince1970: Double(millis) / 1_000)
            let rounded = Int64((date.timeIntervalSince1970 * 1000).rounded())
            let (seconds, fraction) = rounded.quotientAndRemainder(dividingBy: 1000)
            let adjusted = fraction < 0 ? (seconds - 1, fraction + 1000) : (seconds, fraction)
            var time = time_t(adjusted.0)
            var parts = tm()
            gmtime_r(&time, &parts)
            let expected = String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(adjusted.1))
            #expect(Timestamp.format(date) == expected)
        }
    }

    /// The hand parser of `format`'s form (`parseFormatted`) reads what the format style reads,
    /// to the same Date, over 20,000 seeded instants from 1970 to 2100 and the edges of leap years.
    @Test func theFastTimestampParserAgreesWithTheFormatStyle() throws {
        var generator = SystemRandomNumberGenerator()
        var seeded = (0..<20_000).map { _ in Int64.random(in: 0..<4_102_444_800_000, using: &generator) }
        seeded += [0, 951_782_400_000, 951_868_799_999, 4_107_542_399_999, 1_709_164_800_123]  // 2000-02-29, 2100-02-28
        for millis in seeded {
            let text = Timestamp.format(Date(timeIntervalSince1970: Double(millis) / 1_000))
            let fast = try #require(Timestamp.parseFormatted(text), "\(text)")
            let style = try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
            #expect(Timestamp.format(fast) == text)
            #expect(abs(fast.timeIntervalSince(style)) < 0.000_001, "\(text): \(fast.timeIntervalSince1970) against \(style.timeIntervalSince1970)")
        }
        #expect(Timestamp.parseFormatted("2026-01-05T10:00:00Z") == nil)
        #expect(Timestamp.parseFormatted("2026-13-05T10:00:00.000Z") == nil)
        #expect(Timestamp.parse("2026-01-05T10:00:00Z") != nil)
    }
}
