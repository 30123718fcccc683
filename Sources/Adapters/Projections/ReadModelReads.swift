/// Runs a read of a Postgres read model. A read model whose projector has never run against this
/// database has no table yet (an API process may start before the projectors do): it reads as
/// `empty`, the model at position zero, which is what eventual consistency promises, rather than
/// failing the request with a server error.
func readModel<T>(orIfAbsent empty: @autoclosure () -> T, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch where PostgresErrors.sqlState(error) == PostgresErrors.undefinedTable {
        return empty()
    }
}
