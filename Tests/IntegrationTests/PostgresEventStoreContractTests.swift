import Adapters
import EventStoreContract
import Testing

/// The same contract the in-memory store passes, on Postgres.
@Suite struct PostgresEventStoreContractTests {
    @Test(arguments: EventStoreContract.names)
    func contract(_ name: String) async throws {
        try await TestServers.withDatabase { database in
            try await EventStoreContract.cases[name]!(database.eventStore)
        }
    }
}
