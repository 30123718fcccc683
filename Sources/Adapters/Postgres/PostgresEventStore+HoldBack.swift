import Commands
import Events

extension PostgresEventStore: HoldBackProbe {
    /// The horizon is the server's: any database's transaction with an id holds it, and so does
    /// a prepared (two-phase) transaction, which no session shows. Every role sees each session's
    /// pid, database and transaction id; its state and age only for its own role's sessions
    /// (else `?`), unless it has pg_read_all_stats.
    public func holdingBack() async throws -> [String] {
        let rows = try await client.query("""
            SELECT description FROM (
                SELECT age(backend_xid) AS age, format('pid %s in database %s (%s, %s, open %s s)', pid, coalesce(datname, '?'),
                       coalesce(nullif(application_name, ''), host(client_addr), '?'), coalesce(state, '?'),
                       coalesce(floor(extract(epoch FROM now() - xact_start))::text, '?')) AS description
                FROM pg_stat_activity WHERE backend_xid IS NOT NULL
                UNION ALL
                SELECT age(transaction), format('prepared transaction %L in database %s (since %s)', gid, database, prepared)
                FROM pg_prepared_xacts
            ) open ORDER BY age DESC LIMIT 5
            """, logger: logger)
        var found: [String] = []
        for try await description in rows.decode(String.self) { found.append(description) }
        return found
    }
}

extension PostgresEventStore: LagProbe {
    public func eventsAfter(_ checkpoint: Checkpoint, cap: Int) async throws -> Int {
        try await Self.count(after: checkpoint, cap: cap, client: client, logger: logger)
    }
}
extension PostgresEventStore: HeadProbe {}
