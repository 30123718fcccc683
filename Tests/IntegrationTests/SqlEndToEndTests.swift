import Adapters
import Commands
import Events
import Foundation
import Testing

/// Text-to-SQL through `chronicle serve`: questions answered by the offline translator and by a
/// model, the asker's own SQL, refusals, and owner isolation whatever SQL the model writes.
@Suite(.serialized) struct SqlEndToEndTests {
    static let aliceEmail = "alice-t2s@example.com", bobEmail = "bob-t2s@example.com"
    static let alice = UserDecider.userID(email: aliceEmail).uuidString.lowercased()
    static let bob = UserDecider.userID(email: bobEmail).uuidString.lowercased()

    static func seed(_ database: ChronicleDatabase) async throws {
        for (owner, count) in [(alice, 3), (bob, 2)] {
            for n in 0..<count {
                let (stream, events) = AnalyticsTests.run(owner: owner, model: "m", ending: "completed", durationMs: 10, calls: 1, at: Double(n))
                _ = try await database.eventStore.append(to: stream, expected: .noStream, events: events)
            }
        }
    }

    static func ask(_ client: HTTPTestClient, _ body: [String: Any]) async throws -> [String: Any] {
        let accepted = try await client.send("POST", "/api/v1/sql/queries", json: body)
        #expect(accepted.status == 202, "\(accepted.text)")
        let id = try #require(accepted.json["query_id"] as? String)
        #expect(accepted.headers["location"] == "/api/v1/sql/queries/\(id)")
        return try await client.poll("/api/v1/sql/queries/\(id)", timeout: .seconds(60)) { $0["status"] as? String != "pending" }.json
    }

    @Test func theOfflineTranslatorAnswersPlainQuestionsAndRefusesTheRest() async throws {
        try await TestServers.withDatabase { database in
            try await Self.seed(database)
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let alice = try await client.signIn(database, email: Self.aliceEmail)
                let counted = try await Self.ask(alice, ["question": "How many agent runs?"])
                #expect(counted["status"] as? String == "executed", "\(counted)")
                #expect(counted["model"] as? String == "offline" && counted["sql"] as? String == "SELECT count(*) AS count FROM chronicle_data.agent_runs")
                let result = try #require(counted["result"] as? [String: Any])
                #expect(result["columns"] as? [String] == ["count"] && (result["rows"] as? [[Int]]) == [[3]])
                #expect((counted["verdict"] as? [String: Any])?["accepted"] as? Bool == true)

                let perModel = try await Self.ask(alice, ["question": "agent runs per status"])
                #expect(((perModel["result"] as? [String: Any])?["rows"] as? [[Any]])?.first?.first as? String == "completed", "\(perModel)")

                let unknown = try await Self.ask(alice, ["question": "Why did my costs go up last week?"])
                #expect(unknown["status"] as? String == "failed")
                let error = unknown["error"] as? [String: Any]
                #expect(error?["layer"] as? String == "translator" && (error?["message"] as? String)?.contains("needs a language model") == true)

                // The asker's own SQL goes through the same validator.
                let own = try await Self.ask(alice, ["sql": "SELECT status, count(*) FROM agent_runs GROUP BY 1"])
                #expect(own["status"] as? String == "executed" && own["question"] is NSNull)
                let refused = try await Self.ask(alice, ["sql": "SELECT pg_sleep(30) FROM pg_catalog.pg_authid"])
                #expect(refused["status"] as? String == "rejected")
                let rules = ((refused["verdict"] as? [String: Any])?["violations"] as? [[String: Any]])?.compactMap { $0["rule"] as? String }
                #expect(Set(rules ?? []) == ["sql.function_not_allowed", "sql.system_catalog"])
                #expect(refused["result"] is NSNull)

                // Bad input is a problem, not a query.
                for body: [String: Any] in [[:], ["question": "x", "sql": "SELECT 1"], ["question": ""], ["datasource_id": "elsewhere", "question": "how many agents"]] {
                    let bad = try await alice.send("POST", "/api/v1/sql/queries", json: body)
                    #expect([404, 422].contains(bad.status) && bad.headers["content-type"] == "application/problem+json", "\(body): \(bad.status)")
                }
                let schema = try await alice.send("GET", "/api/v1/sql/datasources/chronicle/schema")
                let relations = (schema.json["relations"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(Set(relations ?? []).isSuperset(of: ["agent_runs", "sandbox_runs"]), "\(schema.text)")
                #expect((schema.json["schema_hash"] as? String)?.count == 64)
                let bob = try await client.signIn(database, email: Self.bobEmail)
                let id = try #require(counted["query_id"] as? String)
                #expect(try await bob.send("GET", "/api/v1/sql/queries/\(id)").status == 404)
            }
        }
    }

    @Test func whateverSQLTheModelWritesBobNeverSeesAlicesRows() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await Self.seed(database)
                let token = try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url, "CHRONICLE_SQL_MODEL": "stub-sql-all"]) { client, _ in
                    let bob = try await client.signIn(database, email: Self.bobEmail)
                    let all = try await Self.ask(bob, ["question": "How many runs does everyone have?"])
                    #expect(all["status"] as? String == "executed" && all["model"] as? String == "stub-sql-all", "\(all)")
                    let rows = (all["result"] as? [String: Any])?["rows"] as? [[Any]] ?? []
                    #expect(rows.count == 1 && rows.first?.first as? String == Self.bob && rows.first?.last as? Int == 2, "\(rows)")
                    // The question and the schema went to the model as data; no sample rows.
                    let sent = String(decoding: try #require(stub.requests(model: "stub-sql-all").first).raw, as: UTF8.self)
                    #expect(sent.contains("<question>") && sent.contains("agent_runs") && !sent.contains(Self.alice))
                    return bob.token
                }
                try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url, "CHRONICLE_SQL_MODEL": "stub-sql-escape"]) { client, _ in
                    // The same user (and token: every process shares the key) on a server with another model.
                    let bob = client.authorized(try #require(token))
                    let escape = try await Self.ask(bob, ["question": "anything"])
                    #expect(escape["status"] as? String == "rejected", "\(escape)")
                    let rules = ((escape["verdict"] as? [String: Any])?["violations"] as? [[String: Any]])?.compactMap { $0["rule"] as? String }
                    #expect(rules == ["sql.one_statement"])
                }
                let events = try await database.client.query("SELECT count(*) FROM events WHERE stream_id LIKE 'agentexecution-%'", logger: TestServers.logger)
                    .decode(Int64.self).all()
                #expect(events == [20], "the log of runs changed")
            }
        }
    }

    /// History as an older policy judged it: one statement it refused that the validator now
    /// admits, one it ran that the validator now refuses, one unchanged.
    @Test func revalidateTriesTheCurrentValidatorOnTheLoggedStatements() async throws {
        try await TestServers.withDatabase { database in
            let cases: [(String, Bool)] = [("SELECT count(*) FROM agent_runs", false), ("SELECT pg_sleep(1)", true), ("SELECT * FROM agents", true)]
            var ids: [UUID] = []
            for (sql, accepted) in cases {
                let id = UUID()
                ids.append(id)
                let requested = SqlQueryRequested(
                    queryID: id, ownerID: "u1", tenantID: nil, scope: .owner, datasourceID: "chronicle", question: nil, sql: sql, requestedAt: Date())
                let outcome: any DomainEvent =
                    accepted
                    ? SqlQueryExecuted(queryID: id, sql: sql, columns: [], rows: [], rowCount: 0, truncated: false, durationMs: 1, cost: 1, executedAt: Date())
                    : SqlQueryRejected(queryID: id, sql: sql, violations: [.init(rule: "sql.old_rule", detail: "an older policy")], rejectedAt: Date())
                _ = try await database.eventStore.append(
                    to: SqlQueryDecider.streamID(id).description, expected: .noStream,
                    events: [try NewEvent(requested, id: UUID(), metadata: .init()), try NewEvent(outcome, id: UUID(), metadata: .init())])
            }
            let result = try await CLIProcess.run(["sql", "revalidate", "--database-url", CLITests.url(database)])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(lines.count == 3, "\(result.stdout)")
            let changed = Dictionary(uniqueKeysWithValues: lines.dropLast().compactMap { line in
                (line["query_id"] as? String).map { ($0, line["now"] as? String ?? "") }
            })
            #expect(changed == [ids[0].uuidString.lowercased(): "accepted", ids[1].uuidString.lowercased(): "rejected"])
            let summary = lines.last ?? [:]
            #expect(summary["checked"] as? Int == 3 && summary["now_refused"] as? Int == 1 && summary["now_allowed"] as? Int == 1 && summary["unchanged"] as? Int == 1)
        }
    }
}
