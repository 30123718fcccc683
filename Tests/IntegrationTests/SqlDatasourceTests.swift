import Adapters
import Commands
import Events
import Foundation
import Testing

/// A registered outside database: checked at registration (no superuser, no role that can
/// write), introspected with its comments, queried through the same layers; its credentials
/// sealed outside the log.
@Suite(.serialized) struct SqlDatasourceTests {
    static func url(_ database: ChronicleDatabase, user: String, password: String? = nil) -> String {
        let s = database.settings
        return "postgres://\(user)\(password.map { ":" + $0 } ?? "")@\(s.host):\(s.port)/\(s.database)?sslmode=disable"
    }

    /// A shop database with three orders, a role that can only read them and one that can write.
    static func shop(_ outside: ChronicleDatabase) async throws {
        try await outside.execute("""
            CREATE SCHEMA shop;
            CREATE TABLE shop.orders (id integer PRIMARY KEY, customer text NOT NULL, amount numeric(10, 2) NOT NULL);
            COMMENT ON TABLE shop.orders IS 'Orders placed in the shop';
            COMMENT ON COLUMN shop.orders.amount IS 'What the customer paid, in euros';
            INSERT INTO shop.orders VALUES (1, 'ada', 10.50), (2, 'grace', 99.00), (3, 'ada', 5.25);
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't2s_reader') THEN CREATE ROLE t2s_reader LOGIN; END IF;
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 't2s_writer') THEN CREATE ROLE t2s_writer LOGIN; END IF;
            END $$;
            GRANT USAGE ON SCHEMA shop TO t2s_reader, t2s_writer;
            GRANT SELECT ON shop.orders TO t2s_reader, t2s_writer;
            GRANT INSERT ON shop.orders TO t2s_writer
            """)
    }

    @Test func aRegisteredDatabaseIsCheckedIntrospectedAndQueriedItsCredentialsSealed() async throws {
        try await TestServers.withDatabase(migrated: false) { outside in
            try await Self.shop(outside)
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database) { client, _ in
                    let alice = try await client.signIn(database, email: "alice-shop@example.com")
                    let registered = try await alice.send(
                        "POST", "/api/v1/sql/datasources",
                        json: ["name": "shop", "url": Self.url(outside, user: "t2s_reader", password: "s3cret-pw"), "schemas": ["shop"]])
                    #expect(registered.status == 201, "\(registered.text)")
                    #expect(!registered.text.contains("s3cret-pw"))
                    let id = try #require(registered.json["id"] as? String)

                    let schema = try await alice.send("GET", "/api/v1/sql/datasources/\(id)/schema")
                    #expect(schema.status == 200, "\(schema.text)")
                    let relation = (schema.json["relations"] as? [[String: Any]])?.first
                    #expect(relation?["name"] as? String == "orders" && relation?["comment"] as? String == "Orders placed in the shop")

                    let counted = try await SqlEndToEndTests.ask(alice, ["datasource_id": id, "question": "how many orders"])
                    #expect(counted["status"] as? String == "executed", "\(counted)")
                    #expect((counted["result"] as? [String: Any])?["rows"] as? [[Int]] == [[3]])
                    let top = try await SqlEndToEndTests.ask(alice, ["datasource_id": id, "question": "top 2 orders by amount"])
                    let rows = (top["result"] as? [String: Any])?["rows"] as? [[Any]] ?? []
                    #expect(rows.count == 2 && rows.first?.first as? Int == 2, "\(top)")
                    let catalog = try await SqlEndToEndTests.ask(alice, ["datasource_id": id, "sql": "SELECT rolname FROM pg_catalog.pg_roles"])
                    #expect(catalog["status"] as? String == "rejected")
                    // The role layer on its own: even a statement past the validator could not write.
                    let write = try await SqlEndToEndTests.ask(alice, ["datasource_id": id, "sql": "SELECT * FROM orders FOR UPDATE"])
                    #expect(write["status"] as? String == "rejected")

                    // Refused registrations, each saying why.
                    let superuser = try await alice.send(
                        "POST", "/api/v1/sql/datasources", json: ["name": "root", "url": Self.url(outside, user: outside.settings.username), "schemas": ["shop"]])
                    #expect(superuser.status == 422 && superuser.text.contains("superuser"), "\(superuser.text)")
                    let writer = try await alice.send(
                        "POST", "/api/v1/sql/datasources", json: ["name": "w", "url": Self.url(outside, user: "t2s_writer"), "schemas": ["shop"]])
                    #expect(writer.status == 422 && writer.text.contains("may write to shop.orders"), "\(writer.text)")
                    let nowhere = try await alice.send(
                        "POST", "/api/v1/sql/datasources", json: ["name": "x", "url": "postgres://t2s_reader@127.0.0.1:1/none", "schemas": ["shop"]])
                    #expect(nowhere.status == 422 && nowhere.text.contains("could not be reached"), "\(nowhere.text)")

                    // Another owner's source is nobody else's.
                    let bob = try await client.signIn(database, email: "bob-shop@example.com")
                    #expect(try await bob.send("GET", "/api/v1/sql/datasources/\(id)/schema").status == 404)
                    #expect(try await bob.send("POST", "/api/v1/sql/queries", json: ["datasource_id": id, "question": "how many orders"]).status == 404)

                    // The secret is in neither the log nor the sealed row's bytes.
                    let logged = try await database.client.query("SELECT count(*) FROM events WHERE data::text LIKE '%s3cret-pw%'", logger: TestServers.logger)
                        .decode(Int64.self).all()
                    #expect(logged == [0])
                    let sealed = try await database.client.query("SELECT sealed FROM sql_datasource_credentials", logger: TestServers.logger)
                        .decode(Data.self).all()
                    #expect(sealed.count == 1 && !String(decoding: sealed[0], as: UTF8.self).contains("s3cret-pw"))

                    let removed = try await alice.send("DELETE", "/api/v1/sql/datasources/\(id)")
                    #expect(removed.status == 204)
                    #expect(try await alice.send("GET", "/api/v1/sql/datasources/\(id)/schema").status == 404)
                    let left = try await database.client.query("SELECT count(*) FROM sql_datasource_credentials", logger: TestServers.logger)
                        .decode(Int64.self).all()
                    #expect(left == [0])
                }
            }
        }
    }
}
