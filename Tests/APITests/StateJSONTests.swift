import Commands
import Composition
import Events
import Foundation
import Testing

/// Decider states as the audit routes show them.
@Suite struct StateJSONTests {
    enum Phase: Sendable { case idle, running(since: Int), done(String) }
    enum Tier: String, Sendable { case free, pro }
    struct Sample: Sendable {
        var ownerID = "u1"
        var createdAt = Date(timeIntervalSince1970: 0)
        var urlPath: String? = nil
        var phase = Phase.running(since: 3)
        var done = Phase.done("ok")
        var idle = Phase.idle
        var tier = Tier.pro
        var tags: Set<String> = ["b", "a"]
        var counts: [String: Int] = ["x": 1]
        var id = UUID(uuidString: "6F9619FF-8B86-D011-B42D-00C04FC964FF")!
    }

    @Test func statesAreObjectsWithSnakeCaseKeysAndReadableEnums() {
        let json = StateJSON.value(Sample())
        #expect(json == .object([
            "owner_id": .string("u1"), "created_at": .string("1970-01-01T00:00:00.000Z"), "url_path": .null,
            "phase": .object(["running": .object(["since": .number(3)])]), "done": .object(["done": .string("ok")]),
            "idle": .string("idle"), "tier": .string("pro"), "tags": .array([.string("a"), .string("b")]),
            "counts": .object(["x": .number(1)]), "id": .string("6f9619ff-8b86-d011-b42d-00c04fc964ff"),
        ]))
    }

    @Test func everyModulesDeciderFoldsToAnObject() throws {
        #expect(Set(Modules.deciders.keys).isSuperset(of: ["agent", "agentexecution", "codeexecution", "user", "persona", "personarelease", "personavalidation"]))
        for (category, decider) in Modules.deciders {
            guard case .object = try decider.state(after: [], registry: .chronicle) else {
                Issue.record("\(category)'s initial state is not an object")
                continue
            }
        }
    }

    @Test func aDiffNamesEachChangedLeafByPointer() {
        let before: JSONValue = .object(["a": .number(1), "b": .object(["c/d": .string("x")]), "gone": .bool(true), "list": .array([.number(1)])])
        let after: JSONValue = .object(["a": .number(1), "b": .object(["c/d": .string("y")]), "new": .null, "list": .array([.number(2)])])
        #expect(StateJSON.diff(before, after) == [
            .init(path: "/b/c~1d", before: .string("x"), after: .string("y")),
            .init(path: "/gone", before: .bool(true), after: nil),
            .init(path: "/list/0", before: .number(1), after: .number(2)),
            .init(path: "/new", before: nil, after: .null),
        ])
    }
}
