import Adapters
import Events
import Foundation
import Testing

/// The Workflows REST routes through `chronicle serve` on Postgres: batched edits rebased or
/// refused with the rule that refused them, retries that append nothing, publishing only what the
/// publisher saw, restore and time travel, diff, blame and owner isolation.
@Suite(.serialized) struct WorkflowsEndToEndTests {
    static func node(_ id: String, _ type: String = "agent", x: Double = 0, config: [String: Any] = [:]) -> [String: Any] {
        ["op": "add_node", "node": ["id": id, "type": type, "label": id, "position": ["x": x, "y": 0], "config": config]]
    }

    static func edge(_ id: String, _ source: String, _ target: String) -> [String: Any] {
        ["op": "add_edge", "edge": ["id": id, "source": source, "target": target]]
    }

    static func create(_ client: HTTPTestClient, name: String = "Triage") async throws -> (String, Int) {
        let created = try await client.send("POST", "/api/v1/workflows", json: ["name": name, "description": "Sorts tickets"])
        #expect(created.status == 201, "create answered \(created.status): \(created.text)")
        return (try #require(created.json["id"] as? String), try #require(created.json["version"] as? Int))
    }

    static func edit(_ client: HTTPTestClient, _ id: String, opID: String, base: Int, _ ops: [[String: Any]]) async throws -> HTTPTestClient.Reply {
        try await client.send("PATCH", "/api/v1/workflows/\(id)", json: ["op_id": opID, "base_version": base, "ops": ops])
    }

    static func nodeIDs(_ json: [String: Any]) -> [String] { (json["nodes"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } }
    static func edgeIDs(_ json: [String: Any]) -> [String] { (json["edges"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } }

    @Test func concurrentEditsRebaseOrAreRefusedWithTheirRuleAndARetryAppendsNothing() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,projectors") { client, _ in
                let (id, v1) = try await Self.create(client)
                let seeded = try await Self.edit(
                    client, id, opID: "a:1", base: v1, [Self.node("in", "input"), Self.node("sum", config: ["max_tokens": 256]), Self.node("out", "output")])
                #expect(seeded.status == 200, "\(seeded.text)")
                #expect(seeded.json["status"] as? String == "applied")
                let base = try #require(seeded.json["version"] as? Int)

                // Two clients on the same base: moving one node while another is relabelled commutes.
                let moved = try await Self.edit(client, id, opID: "a:2", base: base, [["op": "move_node", "node": "in", "position": ["x": 10, "y": 20]]])
                #expect(moved.json["status"] as? String == "applied", "\(moved.text)")
                let relabeled = try await Self.edit(client, id, opID: "b:1", base: base, [["op": "relabel_node", "node": "sum", "label": "Summarise"]])
                #expect(relabeled.status == 200, "\(relabeled.text)")
                #expect(relabeled.json["status"] as? String == "rebased")

                // The same field changed on the same base: the later one wins and says whom it overwrote.
                let first = try await Self.edit(client, id, opID: "a:3", base: base, [["op": "set_config", "node": "sum", "field": "max_tokens", "value": 512]])
                let second = try await Self.edit(client, id, opID: "b:2", base: base, [["op": "set_config", "node": "sum", "field": "max_tokens", "value": 1024]])
                #expect(second.json["status"] as? String == "rebased")
                #expect(second.json["overwrote"] as? [Int] == [try #require(first.json["version"] as? Int)], "\(second.text)")

                // One client removes a node; another, on the old base, moves it and wires an edge to it.
                let beforeRemoval = try #require(second.json["version"] as? Int)
                let removed = try await Self.edit(client, id, opID: "a:4", base: beforeRemoval, [["op": "remove_node", "node": "out"]])
                #expect(removed.status == 200)
                let removalVersion = try #require(removed.json["version"] as? Int)
                let stale = try await Self.edit(client, id, opID: "b:3", base: beforeRemoval, [["op": "move_node", "node": "out", "position": ["x": 1, "y": 1]]])
                #expect(stale.status == 409)
                #expect(stale.headers["content-type"] == "application/problem+json")
                #expect(stale.json["code"] as? String == "workflow.target_deleted", "\(stale.text)")
                #expect(stale.json["conflict_version"] as? Int == removalVersion)
                let dangling = try await Self.edit(client, id, opID: "b:4", base: beforeRemoval, [Self.edge("sum-out", "sum", "out")])
                #expect(dangling.status == 409)
                #expect(dangling.json["code"] as? String == "workflow.dangling_endpoint", "\(dangling.text)")

                // A retry with the same op_id answers the first acknowledgement and appends nothing.
                let retried = try await Self.edit(client, id, opID: "a:2", base: base, [["op": "move_node", "node": "in", "position": ["x": 10, "y": 20]]])
                #expect(retried.status == 200)
                #expect(retried.json["version"] as? Int == moved.json["version"] as? Int)
                let retriedRejection = try await Self.edit(client, id, opID: "b:3", base: beforeRemoval, [["op": "move_node", "node": "out", "position": ["x": 1, "y": 1]]])
                #expect(retriedRejection.status == 409)
                #expect(retriedRejection.json["version"] as? Int == stale.json["version"] as? Int)
                // A refusal's ETag is the stream's version after it: the head now.
                let etag = try #require(dangling.headers["etag"])
                let unchanged = try await Self.edit(client, id, opID: "a:2", base: base, [["op": "move_node", "node": "in", "position": ["x": 10, "y": 20]]])
                #expect(unchanged.status == 200)
                let after = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(etag.trimmingCharacters(in: ["\""]))")
                #expect(after.status == 200)
                let afterHead = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(Int(etag.trimmingCharacters(in: ["\""]))! + 1)")
                #expect(afterHead.status == 404, "a retry appended an event: \(afterHead.text)")

                // The graph as the log has it: no dangling edge, the winner's value, the relabel kept.
                let nodes = try #require(after.json["nodes"] as? [[String: Any]])
                #expect(Self.nodeIDs(after.json).sorted() == ["in", "sum"])
                let sum = try #require(nodes.first { $0["id"] as? String == "sum" })
                #expect(sum["label"] as? String == "Summarise")
                #expect((sum["config"] as? [String: Any])?["max_tokens"] as? Int == 1024)
                #expect(Self.edgeIDs(after.json).isEmpty)

                // Without a base the edit is refused; with a stale If-Match it is a 412.
                let baseless = try await client.send("PATCH", "/api/v1/workflows/\(id)", json: ["ops": [["op": "rename", "name": "x"]]])
                #expect(baseless.status == 428)
                #expect(baseless.json["code"] as? String == "workflow.base_required")
                let precondition = try await client.send(
                    "PATCH", "/api/v1/workflows/\(id)", json: ["ops": [["op": "rename", "name": "x"]]], headers: ["If-Match": "\"\(base)\""])
                #expect(precondition.status == 412, "\(precondition.text)")
                let unknown = try await Self.edit(client, id, opID: "a:9", base: base, [["op": "explode"]])
                #expect(unknown.status == 400, "\(unknown.text)")
                let badType = try await Self.edit(client, id, opID: "a:10", base: base, [Self.node("x", "teleporter")])
                #expect(badType.status == 422, "\(badType.text)")
            }
        }
    }

    @Test func aStaleDraftIsNeverPublishedAndRestoreKeepsTheDraftBeforeIt() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,projectors,relay") { client, _ in
                let (id, v1) = try await Self.create(client)
                let built = try await Self.edit(client, id, opID: "a:1", base: v1, [Self.node("in", "input"), Self.node("sum"), Self.edge("e1", "in", "sum")])
                #expect(built.status == 200, "\(built.text)")
                let seen = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(try #require(built.json["version"] as? Int))")
                let draftVersion = try #require(seen.json["draft_version"] as? Int)
                let hash = try #require(seen.json["content_hash"] as? String)

                // Someone else edits; publishing what this client saw is refused, never published.
                let other = try await Self.edit(client, id, opID: "b:1", base: draftVersion, [Self.node("out", "output"), Self.edge("e2", "sum", "out")])
                #expect(other.status == 200)
                let stale = try await client.send("POST", "/api/v1/workflows/\(id)/versions", json: ["draft_version": draftVersion, "content_hash": hash])
                #expect(stale.status == 409, "\(stale.text)")
                #expect(stale.json["code"] as? String == "workflow.draft_stale")
                let forged = try await client.send(
                    "POST", "/api/v1/workflows/\(id)/versions", json: ["draft_version": try #require(other.json["version"] as? Int), "content_hash": hash])
                #expect(forged.status == 409)
                #expect(forged.json["code"] as? String == "workflow.hash_mismatch", "\(forged.text)")
                #expect((try await client.send("GET", "/api/v1/workflows/\(id)/versions")).json["items"] as? [Any] != nil)

                // Publish version 1 (three nodes), change the draft, publish 2, restore 1.
                let current = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(try #require(other.json["version"] as? Int))")
                let published = try await client.send(
                    "POST", "/api/v1/workflows/\(id)/versions",
                    json: ["draft_version": try #require(current.json["draft_version"] as? Int), "content_hash": try #require(current.json["content_hash"] as? String), "note": "first"])
                #expect(published.status == 201, "\(published.text)")
                #expect(published.json["version"] as? Int == 1)
                let changed = try await Self.edit(
                    client, id, opID: "a:2", base: try #require(published.headers["etag"].flatMap { Int($0.trimmingCharacters(in: ["\""])) }),
                    [["op": "remove_node", "node": "in"], ["op": "rename", "name": "Triage v2"]])
                #expect(changed.status == 200, "\(changed.text)")
                let beforeRestore = try #require(changed.json["version"] as? Int)
                let draftBefore = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(beforeRestore)")

                let diff = try await client.send("GET", "/api/v1/workflows/\(id)/diff?from=1")
                #expect(diff.status == 200, "\(diff.text)")
                #expect((diff.json["nodes_removed"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["in"])
                #expect((diff.json["edges_removed"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["e1"])
                #expect((diff.json["workflow"] as? [[String: Any]])?.first?["to"] as? String == "Triage v2")

                let restored = try await client.send("POST", "/api/v1/workflows/\(id)/versions/1/restore", headers: ["If-Match": "\"\(beforeRestore)\""])
                #expect(restored.status == 200, "\(restored.text)")
                #expect(restored.json["content_hash"] as? String == published.json["content_hash"] as? String)
                #expect(Self.nodeIDs(restored.json).sorted() == ["in", "out", "sum"])
                #expect(Self.edgeIDs(restored.json).sorted() == ["e1", "e2"])
                let still = try await client.send("GET", "/api/v1/workflows/\(id)?at_version=\(beforeRestore)")
                #expect(still.json["content_hash"] as? String == draftBefore.json["content_hash"] as? String)
                #expect(still.json["name"] as? String == "Triage v2")
                let noDiff = try await client.send("GET", "/api/v1/workflows/\(id)/diff?from=1&to=draft")
                #expect((noDiff.json["nodes_added"] as? [Any])?.isEmpty == true && (noDiff.json["nodes_removed"] as? [Any])?.isEmpty == true)

                // An edit based before the restore is refused with draft_restored.
                let late = try await Self.edit(client, id, opID: "b:9", base: beforeRestore, [["op": "move_node", "node": "sum", "position": ["x": 3, "y": 3]]])
                #expect(late.status == 409)
                #expect(late.json["code"] as? String == "workflow.draft_restored", "\(late.text)")

                // The deploy goes out as the integration event workflow.deployed, through the relay.
                let queue = "test.workflows.\(UUID().uuidString.prefix(8))"
                let topology = RelayStore.topology(namespace: database.settings.database, contracts: .chronicle)
                    .merging(AMQPTopology(queues: [.init(name: queue, expires: .seconds(120))], bindings: [(queue, "events", "workflow.#")]))
                let consumer = AMQPConsumer(settings: try TestServers.amqp(), topology: topology, queue: queue, prefetch: 10, logger: TestServers.logger)
                _ = try await AMQPTests.receive(consumer, count: 1, timeout: .milliseconds(200))
                let deployed = try await client.send("POST", "/api/v1/workflows/\(id)/versions/1/deploy")
                #expect(deployed.status == 200, "\(deployed.text)")
                #expect(deployed.json["deployed_version"] as? Int == 1)
                var announced: IntegrationMessage?
                let until = ContinuousClock.now.advanced(by: .seconds(30))
                while announced == nil, ContinuousClock.now < until {
                    for delivery in try await AMQPTests.receive(consumer, count: 1, timeout: .seconds(2)) {
                        let message = try? EventCoding.decode(IntegrationMessage.self, from: delivery.body)
                        if message?.streamID == "workflow-\(id)" { announced = message }
                    }
                }
                #expect(announced?.eventType == "WorkflowDeployed", "no workflow.deployed for \(id)")
                #expect(try await client.send("POST", "/api/v1/workflows/\(id)/versions/7/deploy").status == 404)
                let version = try await client.send("GET", "/api/v1/workflows/\(id)/versions/1")
                #expect(version.json["deployed"] as? Bool == true)
                #expect(Self.nodeIDs(version.json).sorted() == ["in", "out", "sum"])
            }
        }
    }

    @Test func theReadModelServesTheListAndBlameAndEveryRouteIsTheOwners() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database, roles: "api,projectors") { client, _ in
                let (id, v1) = try await Self.create(client)
                let built = try await Self.edit(client, id, opID: "a:1", base: v1, [Self.node("in", "input"), Self.node("sum", config: ["k": 1, "j": 2])])
                let bob = try await client.signIn(database, email: "bob-workflows@example.com")
                let bobsEdit = try await Self.edit(
                    bob, id, opID: "bob:1", base: try #require(built.json["version"] as? Int),
                    [["op": "set_config", "node": "sum", "field": "k", "value": 5]])
                #expect(bobsEdit.status == 404, "another owner's workflow must look absent: \(bobsEdit.text)")
                let own = try await Self.edit(
                    client, id, opID: "a:2", base: try #require(built.json["version"] as? Int), [["op": "set_config", "node": "sum", "field": "k", "value": 5]])
                let after = ["X-Chronicle-After": own.headers["x-chronicle-position"] ?? ""]
                let shown = try await client.send("GET", "/api/v1/workflows/\(id)", headers: after)
                #expect(shown.status == 200)
                #expect(shown.json["version"] as? Int == own.json["version"] as? Int)
                #expect(Self.nodeIDs(shown.json).sorted() == ["in", "sum"])

                let blame = try await client.send("GET", "/api/v1/workflows/\(id)/blame", headers: after)
                #expect(blame.status == 200, "\(blame.text)")
                let sum = try #require((blame.json["nodes"] as? [String: Any])?["sum"] as? [String: Any])
                let config = try #require(sum["config"] as? [String: [String: Any]])
                #expect(config["k"]?["version"] as? Int == own.json["version"] as? Int)
                #expect(config["j"]?["version"] as? Int == built.json["version"] as? Int)
                #expect(config["k"]?["user_id"] as? String != nil)

                let list = try await client.send("GET", "/api/v1/workflows?pageSize=5", headers: after)
                let items = try #require(list.json["items"] as? [[String: Any]])
                #expect(items.map { $0["id"] as? String } == [id])
                #expect(items.first?["node_count"] as? Int == 2)
                #expect((try await bob.send("GET", "/api/v1/workflows", headers: after)).json["total_count"] as? Int == 0)

                for (method, path) in [
                    ("GET", ""), ("GET", "?at_version=1"), ("DELETE", ""), ("GET", "/blame"), ("GET", "/diff?from=draft"), ("GET", "/versions"),
                    ("POST", "/versions/1/restore"), ("POST", "/versions/1/deploy"), ("GET", "/versions/1"),
                ] {
                    let reply = try await bob.send(method, "/api/v1/workflows/\(id)\(path)")
                    #expect(reply.status == 404, "\(method) \(path) answered \(reply.status) to another owner")
                }
                let viewer = try await client.signIn(database, email: "vera-workflows@example.com", roles: [.viewer])
                #expect(try await viewer.send("POST", "/api/v1/workflows", json: ["name": "x"]).status == 403)
                #expect(try await client.send("GET", "/api/v1/workflows/not-a-uuid").status == 404)

                let deleted = try await client.send("DELETE", "/api/v1/workflows/\(id)")
                #expect(deleted.status == 204)
                let afterDelete = ["X-Chronicle-After": deleted.headers["x-chronicle-position"] ?? ""]
                #expect(try await client.send("GET", "/api/v1/workflows/\(id)", headers: afterDelete).status == 404)
                #expect(try await client.send("GET", "/api/v1/workflows", headers: afterDelete).json["total_count"] as? Int == 0)
            }
        }
    }
}
