import Commands
import Events
import Foundation
import Testing

@Suite struct StreamStateCacheTests {
    /// A label moved by another writer (another process) is seen by the next read: the cache
    /// checks the stream's version every time.
    @Test func aStreamMovedByAnotherWriterIsReadAtItsNewVersion() async throws {
        let store = InMemoryEventStore()
        let personaID = UUID()
        let stream = PersonaReleaseDecider.streamID(personaID)
        let writer = CommandHandler<PersonaReleaseDecider>(store: store)
        let cache = StreamStateCache(handler: CommandHandler<PersonaReleaseDecider>(store: store))
        func move(_ version: Int) async throws {
            _ = try await writer.handle(
                .moveLabel(.init(
                    personaID: personaID, ownerID: "u", label: "production", version: version, latestVersion: 3, policy: .init(), gateID: UUID(), now: Date())),
                on: stream, context: CommandContext())
        }
        for version in [1, 2, 3, 1] {
            try await move(version)
            let (state, _) = try await cache.load(stream.description)
            #expect(state.labels["production"] == version)
            let (again, _) = try await cache.load(stream.description)
            #expect(again.labels["production"] == version)
        }
    }
}
