import Commands
import EventStoreContract
import Testing

@Suite struct InMemoryEventStoreContractTests {
    @Test(arguments: EventStoreContract.names)
    func contract(_ name: String) async throws {
        try await EventStoreContract.cases[name]!(InMemoryEventStore())
    }
}
