import Foundation
import Testing

import Composition
@testable import Events

@Suite struct UpcastingTests {
    @Test func storedV1AgentCreatedReadsBackAsTheCurrentShape() throws {
        let v1 = try FixtureTests.fixture("AgentCreated.v1")
        let event = try EventRegistry.chronicle.decode(type: "AgentCreated", version: 1, data: v1)
        let created = try #require(event as? AgentCreated)
        #expect(created.settings == AgentModelSettings(model: "gpt-4", temperature: 0.2, maxTokens: 512))
        #expect(created.plugins == [])
        #expect(created.name == "Support triage")
        #expect(created.ownerID == "user-1")
    }

    @Test func v1WithoutModelFieldsGetsTheSeedDefaults() throws {
        let v1 = Data(#"{"agent_id":"6f9619ff-8b86-d011-b42d-00cf4fc964ff","owner_id":"u","name":"n","instructions":"i","created_at":"2026-01-05T10:00:00.000Z"}"#.utf8)
        let created = try #require(try EventRegistry.chronicle.decode(type: "AgentCreated", version: 1, data: v1) as? AgentCreated)
        #expect(created.settings == AgentModelSettings(model: "gpt-4", temperature: 0.7, maxTokens: 2000))
    }

    @Test func aVersionWithoutUpcasterIsAnError() throws {
        struct Thing: DomainEvent {
            static let eventType = "Thing"
            static let schemaVersion = 3
            var x: Int
        }
        var registry = EventRegistry()
        registry.register(Thing.self, upcasters: [1: { $0 }])
        #expect(throws: EventDecodingError.missingUpcaster(type: "Thing", fromVersion: 2)) {
            try registry.decode(type: "Thing", version: 1, data: Data(#"{"x":1}"#.utf8))
        }
    }

    @Test func aVersionNewerThanTheCodeIsAnError() {
        #expect(throws: EventDecodingError.unsupportedVersion(type: "AgentDeleted", version: 2, current: 1)) {
            try EventRegistry.chronicle.decode(type: "AgentDeleted", version: 2, data: Data("{}".utf8))
        }
    }

    @Test func anUnknownTypeIsAnError() {
        #expect(throws: EventDecodingError.unknownType("NoSuchEvent")) {
            try EventRegistry.chronicle.decode(type: "NoSuchEvent", version: 1, data: Data("{}".utf8))
        }
    }

    @Test func decodingIntoTheWrongFamilyIsAnError() throws {
        struct Other: DomainEvent { static let eventType = "Other" }
        enum OtherFamily: EventFamily {
            case other(Other)
            static var registry: EventRegistry { EventRegistry() }
            var payload: any DomainEvent { switch self { case .other(let o): o } }
            init?(payload: any DomainEvent) {
                guard let o = payload as? Other else { return nil }
                self = .other(o)
            }
        }
        let recorded = RecordedEvent(
            streamID: "agent-1", streamVersion: 1, checkpoint: .start, eventID: UUID(), eventType: "AgentDeleted",
            schemaVersion: 1, data: try FixtureTests.fixture("AgentDeleted.v1"), metadata: EventMetadata(), recordedAt: Date())
        #expect(throws: EventDecodingError.self) { try EventRegistry.chronicle.decode(recorded, as: OtherFamily.self) }
    }
}
