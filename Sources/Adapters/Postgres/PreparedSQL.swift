import PostgresNIO

/// SQL on every command's path, which Postgres parses and plans once per connection (a named
/// prepared statement) instead of on every execution. With unnamed statements, parsing and
/// planning `priorAppend`'s join took longer than running it (0.58 ms of 0.6 ms under
/// `POST /agents` load, `log_min_duration_statement = 0`).
///
/// Only for fixed text with `$n` parameters: a statement whose text varies (a table generation,
/// a list of columns) stays a `PostgresQuery`.
protocol PreparedSQL {
    static var sql: String { get }
}

/// `client.execute(Prepared<Some>(…))`: PostgresNIO prepares it on a connection the first time
/// that connection runs it, under the fully qualified name of `Some`: a connection runs whatever
/// it prepared under a name, so two statements must never share one.
struct Prepared<SQL: PreparedSQL>: PostgresPreparedStatement {
    typealias Row = PostgresRow
    static var name: String { String(reflecting: SQL.self) }
    static var sql: String { SQL.sql }
    let bindings: PostgresBindings

    init(_ bind: (inout PostgresBindings) throws -> Void) rethrows {
        var bindings = PostgresBindings()
        try bind(&bindings)
        self.bindings = bindings
    }

    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
