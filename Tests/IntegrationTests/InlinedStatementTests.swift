@testable import Adapters
import Foundation
import PostgresNIO
import Projections
import Testing

/// A statement-per-event store sends a batch's statements together as one PL/pgSQL block, with
/// their values inlined as typed literals (`SQLStatement.inlined`). Every kind of value must land
/// exactly as a bound one does, and placeholders are only replaced where they are placeholders.
@Suite struct InlinedStatementTests {
    @Test func placeholdersAreReplacedOnlyOutsideQuotesCommentsAndDollarQuotes() throws {
        let statement = SQLStatement(
            """
            SELECT $1, '$1 it''s', "$2", $10 -- $2 here
            /* $2 */ , $$ $2 $$, $tag$ $1 $tag$, $2
            """, [.int(1), .text("two"), .null, .null, .null, .null, .null, .null, .null, .bool(true)])
        let inlined = try #require(statement.inlined(tables: [:]))
        #expect(inlined == """
            SELECT '1'::int8, '$1 it''s', "$2", true -- $2 here
            /* $2 */ , $$ $2 $$, $tag$ $1 $tag$, E'two'::text
            """)
        #expect(SQLStatement("SELECT $2", [.int(1)]).inlined(tables: [:]) == nil)
        #expect(SQLStatement(" insert INTO t VALUES (1)").blockable && SQLStatement("DELETE FROM t").blockable)
        #expect(!SQLStatement("SELECT 1").blockable && !SQLStatement("UPDATE t SET a = 1 RETURNING a").blockable)
        #expect(SQLStatement.anonymousBlock(["INSERT INTO t VALUES ('$chronicle_batch$')"]) == nil)
        #expect(SQLStatement("INSERT INTO {t} VALUES ($1)", [.text("a'b\\c")]).inlined(tables: ["t": "t_g2"])
            == "INSERT INTO t_g2 VALUES (E'a''b\\\\c'::text)")
    }

    static let awkward = "it's a \\ back\\slash, a NUL \u{0000}, ünïcødé 🙂, a newline\n and $1, marks on a backslash \\\u{0301} and a quote '\u{0301}"

    static let rows: [[SQLValue]] = [
        [.text(awkward), .int(Int64.min), .double(0.1), .bool(true), .uuid(UUID()),
         .json(Data(#"{"a": [1, "x\u0000y"], "b": "it's"}"#.utf8)), .timestamp(Date(timeIntervalSince1970: 1_767_607_200.123456)),
         .timestamp(Date(timeIntervalSince1970: -86_400.5))],
        [.text(""), .int(-42), .double(.nan), .bool(false), .null, .null, .null, .null],
        [.null, .int(Int64.max), .double(-.infinity), .null, .uuid(UUID()), .json(Data("[]".utf8)),
         .timestamp(Date(timeIntervalSince1970: 0)), .timestamp(Date(timeIntervalSince1970: 4_102_444_800.999999))],
        [.text("x"), .null, .double(1e-300), .bool(true), .null, .json(Data("\"s\"".utf8)), .null, .null],
    ]

    @Test func everyKindOfValueLandsAsABoundOneDoes() async throws {
        try await TestServers.withDatabase(migrated: false) { database in
            try await database.execute("""
                CREATE TABLE probe (via text, n int, t text, i bigint, d double precision, b boolean, u uuid, j jsonb,
                                    tz timestamptz, ts timestamp)
                """)
            let insert = "INSERT INTO {probe} (via, n, t, i, d, b, u, j, tz, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)"
            try await database.client.withConnection { connection in
                var script: [String] = []
                for (n, row) in Self.rows.enumerated() {
                    let statement = SQLStatement(insert, [.text("bound"), .int(Int64(n))] + row)
                    _ = try await connection.query(statement.query(tables: ["probe": "probe"]), logger: TestServers.logger)
                    let inlined = SQLStatement(insert, [.text("inlined"), .int(Int64(n))] + row)
                    script.append(try #require(inlined.inlined(tables: ["probe": "probe"])))
                }
                let block = try #require(SQLStatement.anonymousBlock(script))
                _ = try await connection.query(PostgresQuery(unsafeSQL: block), logger: TestServers.logger)
            }
            let differing = try await database.client.query("""
                SELECT a.n FROM probe a JOIN probe b ON a.n = b.n AND a.via = 'bound' AND b.via = 'inlined'
                WHERE (a.t, a.i, a.d, a.b, a.u, a.j, a.tz, a.ts) IS DISTINCT FROM (b.t, b.i, b.d, b.b, b.u, b.j, b.tz, b.ts)
                """, logger: TestServers.logger).decode(Int.self).all()
            #expect(differing == [])
            let count = try await database.client.query("SELECT count(*)::int FROM probe", logger: TestServers.logger).decode(Int.self).all()
            #expect(count == [Self.rows.count * 2])
        }
    }
}
