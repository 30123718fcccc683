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
}
