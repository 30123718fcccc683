import Commands
import Events
import Foundation
import Testing

/// The workflow decider: invariants of the graph, rebasing a stale operation onto the head,
/// last-writer-wins on one field, rejections recorded so a retry gets the same ack, publishing
/// only the draft the client saw, restore as a new event. The last test runs seeded clients
/// editing one workflow from stale copies and checks that they all converge on the log's fold.
@Suite struct WorkflowDeciderTests {
    typealias D = WorkflowDecider
    static let id = UUID(uuidString: "0E6B1E1A-5D43-4E0C-9B43-53F8B0A0C0DE")!
    static let now = Date(timeIntervalSince1970: 1_767_607_200)

    static func node(_ id: String, _ type: String = "agent", x: Double = 0) -> WorkflowNode {
        WorkflowNode(id: id, type: type, position: WorkflowPosition(x: x, y: 0), label: id, config: [:])
    }

    static func edge(_ id: String, _ source: String, _ target: String) -> WorkflowEdge {
        WorkflowEdge(id: id, source: source, sourcePort: "out", target: target, targetPort: "in")
    }

    /// Runs commands in order from nothing; returns the state and every event.
    struct Log {
        var state = D.initialState
        var events: [WorkflowEvent] = []

        init() throws {
            try run(.create(.init(workflowID: WorkflowDeciderTests.id, ownerID: "alice", tenantID: nil, name: "Flow", description: "", now: WorkflowDeciderTests.now)))
        }

        @discardableResult
        mutating func run(_ command: D.Command) throws -> [WorkflowEvent] {
            let decided = try D.decide(command, state: state)
            state = D.fold(decided, from: state)
            events += decided
            return decided
        }

        /// Applies one operation message and returns its ack.
        mutating func apply(_ opID: String, base: Int64? = nil, _ ops: [WorkflowOp]) throws -> WorkflowAck {
            try run(.apply(.init(opID: opID, baseVersion: base ?? state.version, ops: ops, now: WorkflowDeciderTests.now)))
            return try #require(state.acks[opID])
        }
    }

    @Test func anEdgeNeedsBothEndsAndIsNeverDoubled() throws {
        var log = try Log()
        #expect(try log.apply("c:1", [.addNode(Self.node("a")), .addNode(Self.node("b")), .addEdge(Self.edge("e1", "a", "b"))]).status == .applied)
        let missing = try log.apply("c:2", [.addEdge(Self.edge("e2", "a", "nowhere"))])
        #expect(missing.status == .rejected && missing.reason == "dangling_endpoint" && missing.conflictVersion == nil)
        let twin = try log.apply("c:3", [.addEdge(Self.edge("e3", "a", "b"))])
        #expect(twin.status == .rejected && twin.reason == "duplicate_edge")
        #expect(log.state.graph.edges.keys.sorted() == ["e1"])
    }

    @Test func aCycleIsRefusedUnlessAConditionClosesIt() throws {
        var log = try Log()
        _ = try log.apply("c:1", [
            .addNode(Self.node("a")), .addNode(Self.node("b")), .addNode(Self.node("c")), .addNode(Self.node("if", "condition")),
            .addEdge(Self.edge("ab", "a", "b")), .addEdge(Self.edge("bc", "b", "c")),
        ])
        #expect(try log.apply("c:2", [.addEdge(Self.edge("ca", "c", "a"))]).reason == "cycle")
        #expect(try log.apply("c:3", [.addEdge(Self.edge("aa", "a", "a"))]).reason == "cycle")
        // Through the condition node, a loop is fine.
        #expect(try log.apply("c:4", [.addEdge(Self.edge("cif", "c", "if")), .addEdge(Self.edge("ifa", "if", "a"))]).status == .applied)
    }

    @Test func aMessageIsAppliedWholeOrRejectedWhole() throws {
        var log = try Log()
        let ack = try log.apply("c:1", [.addNode(Self.node("a")), .addEdge(Self.edge("e", "a", "ghost"))])
        #expect(ack.status == .rejected)
        #expect(log.state.graph.nodes.isEmpty)
    }

    @Test func removingANodeRemovesItsEdgesAndListsThem() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a")), .addNode(Self.node("b")), .addNode(Self.node("c")), .addEdge(Self.edge("ab", "a", "b")), .addEdge(Self.edge("bc", "b", "c"))])
        let events = try log.run(.apply(.init(opID: "c:2", baseVersion: log.state.version, ops: [.removeNode(node: "b")], now: Self.now)))
        #expect((events.first?.payload as? WorkflowNodeRemoved)?.removedEdges == ["ab", "bc"])
        #expect(log.state.graph.edges.isEmpty)
    }

    @Test func aStaleOperationOnAnotherNodeOrFieldIsRebased() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a")), .addNode(Self.node("b"))])
        let base = log.state.version
        _ = try log.apply("x:1", base: base, [.moveNode(node: "a", position: .init(x: 5, y: 5))])
        _ = try log.apply("x:2", base: base, [.setConfig(node: "b", field: "model", value: .string("gpt"))])
        // Another client, still at `base`: another node, and another field of the same node.
        let moved = try log.apply("y:1", base: base, [.moveNode(node: "b", position: .init(x: 9, y: 9))])
        #expect(moved.status == .rebased && moved.overwrote.isEmpty)
        let field = try log.apply("y:2", base: base, [.setConfig(node: "b", field: "prompt", value: .string("hi"))])
        #expect(field.status == .rebased && field.overwrote.isEmpty)
        #expect(log.state.graph.nodes["b"]?.config == ["model": .string("gpt"), "prompt": .string("hi")])
        #expect(log.state.graph.nodes["a"]?.position == .init(x: 5, y: 5))
    }

    @Test func theSameFieldChangedConcurrentlyGoesToTheLastWriterWhoseAckSaysWhomItOverwrote() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a"))])
        let base = log.state.version
        let first = try log.apply("x:1", base: base, [.setConfig(node: "a", field: "model", value: .string("one"))])
        let second = try log.apply("y:1", base: base, [.setConfig(node: "a", field: "model", value: .string("two"))])
        #expect(first.status == .applied)
        #expect(second.status == .rebased && second.overwrote == [first.version])
        #expect(log.state.graph.nodes["a"]?.config["model"] == .string("two"))
    }

    @Test func anOperationOnANodeRemovedSinceItsBaseIsRejectedNamingTheRemoval() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a")), .addNode(Self.node("b"))])
        let base = log.state.version
        let removal = try log.apply("x:1", base: base, [.removeNode(node: "a")])
        let moved = try log.apply("y:1", base: base, [.moveNode(node: "a", position: .init(x: 1, y: 1))])
        #expect(moved.status == .rejected && moved.reason == "target_deleted" && moved.conflictVersion == removal.version)
        let edge = try log.apply("y:2", base: base, [.addEdge(Self.edge("ba", "b", "a"))])
        #expect(edge.status == .rejected && edge.reason == "dangling_endpoint" && edge.conflictVersion == removal.version)
        // A removed id is never used again, so the answer about it never changes.
        #expect(try log.apply("z:1", [.addNode(Self.node("a"))]).reason == "id_retired")
    }

    @Test func aRetriedOperationGetsItsAckAndAppendsNothing() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a"))])
        let rejected = try log.apply("c:2", [.addNode(Self.node("a"))])
        let count = log.events.count
        for opID in ["c:1", "c:2"] {
            let again = try log.run(.apply(.init(opID: opID, baseVersion: 0, ops: [.addNode(Self.node("zzz"))], now: Self.now)))
            #expect(again.isEmpty)
        }
        #expect(log.events.count == count)
        #expect(log.state.acks["c:2"] == rejected)
    }

    @Test func malformedOperationsAreRefusedAndRecordNothing() throws {
        let log = try Log()
        let bad: [[WorkflowOp]] = [
            [], [.addNode(Self.node("a", "rocket"))], [.addNode(Self.node("has space"))],
            [.moveNode(node: "a", position: .init(x: .nan, y: 0))], [.rename(name: " ")],
            Array(repeating: .rename(name: "x"), count: 101),
        ]
        for ops in bad {
            #expect(throws: DomainError.self) { try D.decide(.apply(.init(opID: "c:1", baseVersion: 1, ops: ops, now: Self.now)), state: log.state) }
        }
    }

    @Test func onlyTheDraftTheClientSawIsPublished() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a"))])
        let seen = log.state.draftVersion
        let hash = log.state.graph.contentHash
        _ = try log.apply("x:1", [.addNode(Self.node("b"))])
        do {
            try log.run(.publish(draftVersion: seen, contentHash: hash, note: nil, now: Self.now))
            Issue.record("a stale draft was published")
        } catch let error as DomainError {
            #expect(error.code == .workflowDraftStale)
        }
        do {
            try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: hash, note: nil, now: Self.now))
            Issue.record("a draft was published under another draft's hash")
        } catch let error as DomainError {
            #expect(error.code == .workflowHashMismatch)
        }
        #expect(log.state.published.isEmpty)
        try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: log.state.graph.contentHash, note: "first", now: Self.now))
        #expect(log.state.published.count == 1)
        // Publishing the same draft again is a no-op.
        #expect(try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: log.state.graph.contentHash, note: nil, now: Self.now)).isEmpty)
    }

    @Test func aRestoredDraftEqualsTheOldVersionAndTheVersionAfterItStaysReadable() throws {
        var log = try Log()
        _ = try log.apply("c:1", [.addNode(Self.node("a")), .addNode(Self.node("b")), .addEdge(Self.edge("ab", "a", "b"))])
        try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: log.state.graph.contentHash, note: nil, now: Self.now))
        let v1 = log.state.graph
        _ = try log.apply("c:2", [.removeNode(node: "b"), .addNode(Self.node("c")), .setConfig(node: "a", field: "k", value: .number(1))])
        try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: log.state.graph.contentHash, note: nil, now: Self.now))
        let v2 = log.state.graph
        let stale = log.state.version
        try log.run(.restore(version: 1, now: Self.now))
        #expect(log.state.graph == v1)
        #expect(log.state.published[1].graph == v2)
        // Node b is back; c is retired; an operation from before the restore is refused.
        #expect(try log.apply("c:3", base: stale, [.moveNode(node: "a", position: .init(x: 1, y: 1))]).reason == "draft_restored")
        #expect(try log.apply("c:4", [.moveNode(node: "b", position: .init(x: 2, y: 2))]).status == .applied)
        #expect(try log.apply("c:5", [.addNode(Self.node("c"))]).reason == "id_retired")
        try log.run(.deploy(version: 2, now: Self.now))
        #expect(log.state.deployed == 2)
        #expect(try log.run(.deploy(version: 2, now: Self.now)).isEmpty)
    }

    @Test func everyEventRoundTripsThroughTheRegistry() throws {
        var log = try Log()
        _ = try log.apply("c:1", [
            .addNode(WorkflowNode(id: "a", type: "agent", position: .init(x: 1.5, y: -2), label: "A", config: ["max_tokens": .number(64), "nested": .object(["k": .array([.null, .bool(true)])])])),
            .addNode(Self.node("b")), .addEdge(Self.edge("ab", "a", "b")), .rename(name: "Renamed"), .describe(description: "d"),
            .relabelNode(node: "a", label: "AA"), .setConfig(node: "a", field: "max_tokens", value: nil), .removeEdge(edge: "ab"), .removeNode(node: "b"),
        ])
        _ = try log.apply("c:2", [.addNode(Self.node("a"))])
        try log.run(.publish(draftVersion: log.state.draftVersion, contentHash: log.state.graph.contentHash, note: "n", now: Self.now))
        try log.run(.deploy(version: 1, now: Self.now))
        try log.run(.delete(now: Self.now))
        for (index, event) in log.events.enumerated() {
            let stored = try NewEvent(payload: event.payload, id: UUID(), metadata: EventMetadata())
            let recorded = RecordedEvent(
                streamID: "workflow-x", streamVersion: Int64(index + 1), checkpoint: .start, eventID: stored.eventID, eventType: stored.eventType,
                schemaVersion: stored.schemaVersion, data: stored.data, metadata: stored.metadata, recordedAt: Self.now)
            let decoded = try EventRegistry.workflows.decode(recorded, as: WorkflowEvent.self)
            #expect(decoded == event, "\(stored.eventType)")
        }
        // The fold of the decoded log is the state the decider kept.
        #expect(D.fold(log.events) == log.state)
    }

    /// Seeded clients edit one workflow from stale copies (each sees the log only up to where it
    /// last synced), their messages reaching the server in a shuffled order, with retries. At the
    /// end: every client, caught up, has the server's graph; the graph is the fold of the log; no
    /// edge dangles; every message has exactly one ack, each rejection names a reason, and no
    /// retry appended anything.
    @Test(arguments: [UInt64(1), 7, 42, 1_234])
    func staleClientsConvergeOnTheLogsFold(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        var log = try Log()
        let clients = 6
        var synced = [Int](repeating: 0, count: clients)  // events each client has applied
        var graphs = [WorkflowGraph](repeating: log.state.graph, count: clients)
        var sent: [String: Int] = [:]
        var nextID = 0
        var sequence = [Int](repeating: 0, count: clients)
        for _ in 0..<1_500 {
            let client = Int.random(in: 0..<clients, using: &random)
            // Sometimes catch up first (a reconnect, or the events arriving).
            if Bool.random(using: &random) {
                for event in log.events[synced[client]...] { graphs[client] = Self.apply(event, to: graphs[client]) }
                synced[client] = log.events.count
            }
            let local = graphs[client]
            let nodes = local.nodes.keys.sorted()
            let edges = local.edges.keys.sorted()
            let types = WorkflowDecider.nodeTypes.sorted()
            var ops: [WorkflowOp] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0, 1:
                    nextID += 1
                    ops.append(.addNode(WorkflowNode(
                        id: "n\(nextID)", type: types[Int.random(in: 0..<types.count, using: &random)], position: .init(x: Double(nextID), y: 0), label: "", config: [:])))
                case 2 where !nodes.isEmpty:
                    ops.append(.moveNode(node: nodes.randomElement(using: &random)!, position: .init(x: Double(Int.random(in: 0..<100, using: &random)), y: 1)))
                case 3...4 where !nodes.isEmpty:
                    ops.append(.setConfig(node: nodes.randomElement(using: &random)!, field: ["model", "prompt", "k"].randomElement(using: &random)!, value: .number(Double(Int.random(in: 0..<9, using: &random)))))
                case 5 where !nodes.isEmpty:
                    ops.append(.removeNode(node: nodes.randomElement(using: &random)!))
                case 6...7 where nodes.count >= 2:
                    nextID += 1
                    ops.append(.addEdge(Self.edge("e\(nextID)", nodes.randomElement(using: &random)!, nodes.randomElement(using: &random)!)))
                case 8 where !edges.isEmpty:
                    ops.append(.removeEdge(edge: edges.randomElement(using: &random)!))
                default:
                    ops.append(.rename(name: "name \(Int.random(in: 0..<5, using: &random))"))
                }
            }
            sequence[client] += 1
            let opID = "c\(client):\(sequence[client])"
            let base = Int64(synced[client])
            let before = log.events.count
            try log.run(.apply(.init(opID: opID, baseVersion: base, ops: ops, now: Self.now)))
            sent[opID] = log.events.count - before
            // A lost ack: the client sends the same message again, which appends nothing.
            if Int.random(in: 0..<10, using: &random) == 0 {
                let count = log.events.count
                try log.run(.apply(.init(opID: opID, baseVersion: base, ops: ops, now: Self.now)))
                #expect(log.events.count == count, "a retry of \(opID) appended")
            }
        }
        let state = log.state
        #expect(D.fold(log.events) == state)
        for client in 0..<clients {
            for event in log.events[synced[client]...] { graphs[client] = Self.apply(event, to: graphs[client]) }
            #expect(graphs[client] == state.graph, "client \(client) did not converge")
        }
        for edge in state.graph.edges.values {
            #expect(state.graph.nodes[edge.source] != nil && state.graph.nodes[edge.target] != nil, "edge \(edge.id) dangles")
        }
        #expect(sent.count == 1_500)
        for (opID, written) in sent {
            let ack = try #require(state.acks[opID])
            #expect(written >= 1)
            #expect(ack.status != .rejected || ack.reason != nil)
            if ack.status == .rejected { #expect(written == 1) }
        }
        let rejected = state.acks.values.filter { $0.status == .rejected }.count
        let rebased = state.acks.values.filter { $0.status == .rebased }.count
        // The mix was real: some were rebased, some rejected, most went in.
        #expect(rejected > 0 && rebased > 0 && state.graph.nodes.count > 0)
    }

    /// What a client does with an event it receives: the same fold as the read model.
    static func apply(_ event: WorkflowEvent, to graph: WorkflowGraph) -> WorkflowGraph {
        switch event {
        case .edited(let edit): graph.applying(edit.change)
        case .draftRestored(let restored): restored.graph
        case .created(let created): WorkflowGraph(name: created.name, description: created.description)
        default: graph
        }
    }
}

/// SplitMix64: the same seed, the same run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension WorkflowDeciderTests {
    @Test func theDiffNamesEachChangedFieldAndEachConfigKey() {
        var old = WorkflowGraph(name: "Flow", description: "")
        old.nodes = ["a": Self.node("a"), "b": Self.node("b"), "gone": Self.node("gone")]
        old.nodes["a"]?.config = ["k": .number(1), "dropped": .bool(true)]
        old.edges = ["e1": Self.edge("e1", "a", "b"), "e2": Self.edge("e2", "b", "gone")]
        var new = old
        new.name = "Flow 2"
        new.nodes["gone"] = nil
        new.edges["e2"] = nil
        new.nodes["a"]?.config = ["k": .number(2), "added": .string("x")]
        new.nodes["a"]?.position = WorkflowPosition(x: 5, y: 6)
        new.nodes["c"] = Self.node("c", "output")
        new.edges["e1"]?.targetPort = "other"

        let diff = WorkflowDiff(from: old, to: new)
        #expect(diff.workflow == [.init(field: "name", from: .string("Flow"), to: .string("Flow 2"))])
        #expect(diff.nodesAdded.map(\.id) == ["c"])
        #expect(diff.nodesRemoved.map(\.id) == ["gone"])
        #expect(diff.edgesRemoved.map(\.id) == ["e2"])
        #expect(diff.nodesChanged.map(\.id) == ["a"])
        #expect(diff.nodesChanged.first?.fields == [
            .init(field: "position", from: .object(["x": .number(0), "y": .number(0)]), to: .object(["x": .number(5), "y": .number(6)])),
            .init(field: "config", key: "added", from: nil, to: .string("x")),
            .init(field: "config", key: "dropped", from: .bool(true), to: nil),
            .init(field: "config", key: "k", from: .number(1), to: .number(2)),
        ])
        #expect(diff.edgesChanged == [.init(id: "e1", fields: [.init(field: "target_port", from: .string("in"), to: .string("other"))])])
        #expect(WorkflowDiff(from: new, to: new).isEmpty)
    }
}
