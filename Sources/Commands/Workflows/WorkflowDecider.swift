import Crypto
import Events
import Foundation

/// One client operation on a workflow's draft, as sent over the socket or in a batched edit.
public enum WorkflowOp: Sendable, Hashable {
    case rename(name: String)
    case describe(description: String)
    case addNode(WorkflowNode)
    case moveNode(node: String, position: WorkflowPosition)
    case relabelNode(node: String, label: String)
    /// A nil value removes the field.
    case setConfig(node: String, field: String, value: JSONValue?)
    case removeNode(node: String)
    case addEdge(WorkflowEdge)
    case removeEdge(edge: String)
}

/// The server's answer to one operation message: applied at the head it was based on, rebased
/// onto a newer head (what came between commuted with it), or rejected with its reason.
public struct WorkflowAck: Sendable, Hashable {
    public enum Status: String, Sendable { case applied, rebased, rejected }

    public var opID: String
    public var status: Status
    /// The stream version after the operation's events (for a rejection, of the rejection).
    public var version: Int64
    public var reason: String?
    public var detail: String?
    /// The event that made a rejected operation impossible, when one did.
    public var conflictVersion: Int64?
    /// Concurrent changes of the same field (or position, label, name) this operation overwrote:
    /// last writer wins in server order, and the ack says whom it overwrote.
    public var overwrote: [Int64]

    public init(opID: String, status: Status, version: Int64, reason: String? = nil, detail: String? = nil, conflictVersion: Int64? = nil, overwrote: [Int64] = []) {
        self.opID = opID
        self.status = status
        self.version = version
        self.reason = reason
        self.detail = detail
        self.conflictVersion = conflictVersion
        self.overwrote = overwrote
    }
}

extension WorkflowGraph {
    /// sha256 of the graph's canonical JSON (sorted keys): equal graphs, equal hashes.
    public var contentHash: String {
        let data = (try? EventCoding.encode(self)) ?? Data()
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }
}

/// A workflow (`workflow-<id>`): a graph of nodes and edges edited by fine-grained events, with
/// published versions, restores and deploys.
///
/// The event store orders every edit. An operation carries the version its client had seen
/// (`baseVersion`). If the draft changed since, the operation is **rebased**: applied to the head
/// when it commutes with what came between (another node, another field of the same node). The
/// same field (or position, label, name) changed concurrently: last writer in server order wins,
/// and its ack names what it overwrote. An operation on a node removed since its base is rejected
/// (`target_deleted`), an edge to a removed node too (`dangling_endpoint`). Ids are never reused,
/// so those answers never change; rejections are events, so a retry gets the same ack.
public enum WorkflowDecider: Decider {
    public struct Limits: Sendable, Equatable {
        public var maxNodes = 500
        public var maxEdges = 2_000
        public var maxConfigBytes = 16_384
        public var maxOpsPerMessage = 100
        public init() {}
    }

    public static let limits = Limits()
    /// The kinds of node the platform can run. Only a `condition` may close a cycle: a loop needs
    /// a way out.
    public static let nodeTypes: Set<String> = ["agent", "persona", "sandbox.python", "sql.query", "knowledge.search", "condition", "input", "output"]
    public static let loopingTypes: Set<String> = ["condition"]
    /// Acks kept in the state for answering retries with their ack (the log keeps them all).
    public static let ackMemory = 4_096

    public struct Create: Sendable, Equatable {
        public var workflowID: UUID
        public var ownerID: String
        public var tenantID: String?
        public var name: String
        public var description: String
        public var now: Date

        public init(workflowID: UUID, ownerID: String, tenantID: String?, name: String, description: String, now: Date) {
            self.workflowID = workflowID
            self.ownerID = ownerID
            self.tenantID = tenantID
            self.name = name
            self.description = description
            self.now = now
        }
    }

    public struct Apply: Sendable, Equatable {
        public var opID: String
        public var baseVersion: Int64
        public var ops: [WorkflowOp]
        public var now: Date

        public init(opID: String, baseVersion: Int64, ops: [WorkflowOp], now: Date) {
            self.opID = opID
            self.baseVersion = baseVersion
            self.ops = ops
            self.now = now
        }
    }

    public enum Command: Sendable, Equatable {
        case create(Create)
        case apply(Apply)
        /// Publishes the draft the client saw: refused if the draft moved since `draftVersion`,
        /// or if the client's content hash is not the draft's.
        case publish(draftVersion: Int64, contentHash: String, note: String?, now: Date)
        case restore(version: Int, now: Date)
        case deploy(version: Int, now: Date)
        case delete(now: Date)
    }

    public struct Published: Sendable, Hashable {
        public var draftVersion: Int64
        public var contentHash: String
        public var graph: WorkflowGraph
    }

    public struct FieldKey: Sendable, Hashable {
        public var node: String
        public var field: String
    }

    public struct State: Sendable, Hashable {
        public var workflowID: UUID?
        public var ownerID: String?
        public var tenantID: String?
        public var deleted = false
        /// The stream version of the last event folded.
        public var version: Int64 = 0
        /// The stream version of the last change to the draft's content.
        public var draftVersion: Int64 = 0
        public var graph = WorkflowGraph()
        public var published: [Published] = []
        public var deployed: Int?
        // Where each part last changed (stream versions), for rebasing an operation.
        public var movedAt: [String: Int64] = [:]
        public var relabeledAt: [String: Int64] = [:]
        public var configChangedAt: [FieldKey: Int64] = [:]
        public var renamedAt: Int64 = 0
        public var describedAt: Int64 = 0
        public var restoredAt: Int64 = 0
        /// Removed ids and when: never reused.
        public var removedNodes: [String: Int64] = [:]
        public var removedEdges: [String: Int64] = [:]
        /// The latest operations' acks, oldest first in `ackOrder`.
        public var acks: [String: WorkflowAck] = [:]
        public var ackOrder: [String] = []
        /// The operation being folded and the version before its first event.
        var folding: Folding?
    }

    struct Folding: Sendable, Hashable {
        var opID: String
        var start: Int64
    }

    public static let category = "workflow"
    public static let initialState = State()

    public static func streamID(_ workflowID: UUID) -> StreamID { StreamID(category: category, id: workflowID) }

    public static func decide(_ command: Command, state: State) throws -> [WorkflowEvent] {
        if case .create(let create) = command {
            guard state.workflowID == nil else { throw DomainError(.conflict, code: .workflowExists, "the workflow exists") }
            try checkName(create.name)
            try checkDescription(create.description)
            return [.created(WorkflowCreated(
                workflowID: create.workflowID, ownerID: create.ownerID, tenantID: create.tenantID, name: create.name, description: create.description,
                createdAt: create.now))]
        }
        guard let workflowID = state.workflowID else { throw DomainError(.notFound, code: .workflowNotFound, "no such workflow") }
        if case .delete = command, state.deleted { return [] }
        guard !state.deleted else { throw DomainError(.conflict, code: .workflowDeleted, "the workflow is deleted") }
        switch command {
        case .create: return []
        case .apply(let apply):
            return try decideApply(apply, workflowID: workflowID, state: state)
        case .publish(let draftVersion, let hash, let note, let now):
            if let last = state.published.last, last.draftVersion == state.draftVersion, draftVersion == state.draftVersion, hash == last.contentHash {
                return []  // this draft is published already
            }
            guard draftVersion == state.draftVersion else {
                throw DomainError(
                    .conflict, code: .workflowDraftStale,
                    "the draft changed since version \(draftVersion) (it is at \(state.draftVersion)): reload it, then publish what you see")
            }
            let content = state.graph.contentHash
            guard hash == content else {
                throw DomainError(.conflict, code: .workflowHashMismatch, "the draft's content hash is \(content), not \(hash): reload it, then publish what you see")
            }
            if let note { try checkText(note, "note", max: 2_000) }
            return [.versionPublished(WorkflowVersionPublished(
                workflowID: workflowID, version: state.published.count + 1, draftVersion: state.draftVersion, contentHash: content, graph: state.graph,
                note: note, publishedAt: now))]
        case .restore(let version, let now):
            let published = try publishedVersion(version, state)
            if published.graph == state.graph { return [] }
            return [.draftRestored(WorkflowDraftRestored(workflowID: workflowID, fromVersion: version, graph: published.graph, at: now))]
        case .deploy(let version, let now):
            let published = try publishedVersion(version, state)
            if state.deployed == version { return [] }
            return [.deployed(WorkflowDeployed(
                workflowID: workflowID, ownerID: state.ownerID ?? "", version: version, contentHash: published.contentHash, deployedAt: now))]
        case .delete(let now):
            return [.deleted(WorkflowDeleted(workflowID: workflowID, deletedAt: now))]
        }
    }

    static func publishedVersion(_ version: Int, _ state: State) throws -> Published {
        guard version >= 1, version <= state.published.count else {
            throw DomainError(.notFound, code: .workflowVersionNotFound, "the workflow has no published version \(version) (it has \(state.published.count))")
        }
        return state.published[version - 1]
    }

    /// Refused operations (state-dependent) become `WorkflowOperationRejected`; malformed ones
    /// throw `workflow.invalid`.
    static func decideApply(_ apply: Apply, workflowID: UUID, state: State) throws -> [WorkflowEvent] {
        try checkID(apply.opID, "op_id", max: 128)
        guard (1...limits.maxOpsPerMessage).contains(apply.ops.count) else {
            throw DomainError(.invalid, code: .workflowInvalid, "a message holds 1 to \(limits.maxOpsPerMessage) operations")
        }
        for op in apply.ops { try check(op) }
        // Answered before: the ack is in the state (a retry through the handler never gets here).
        if state.acks[apply.opID] != nil { return [] }
        let operation = WorkflowOperation(opID: apply.opID, baseVersion: apply.baseVersion)
        func reject(_ reason: WorkflowRejection, _ detail: String, conflict: Int64? = nil) -> [WorkflowEvent] {
            [.operationRejected(WorkflowOperationRejected(
                workflowID: workflowID, operation: operation, reason: reason.rawValue, detail: detail, conflictVersion: conflict, at: apply.now))]
        }
        let base = apply.baseVersion
        guard base >= 0, base <= state.version else {
            return reject(.unknownBase, "base version \(base) is not one this workflow has had (it is at \(state.version))")
        }
        if state.restoredAt > base {
            return reject(.draftRestored, "the draft was restored to a published version after version \(base)", conflict: state.restoredAt)
        }
        var graph = state.graph
        var events: [WorkflowEvent] = []
        /// A node the operation names: present, or why not.
        func target(_ node: String, missing: WorkflowRejection) -> (WorkflowRejection, String, Int64?)? {
            if graph.nodes[node] != nil { return nil }
            if let removed = state.removedNodes[node], removed > base {
                return (missing == .danglingEndpoint ? .danglingEndpoint : .targetDeleted, "node '\(node)' was removed at version \(removed)", removed)
            }
            return (missing, "there is no node '\(node)'", nil)
        }
        for op in apply.ops {
            let edit: any WorkflowEditEvent
            switch op {
            case .rename(let name):
                edit = WorkflowRenamed(workflowID: workflowID, name: name, operation: operation, at: apply.now)
            case .describe(let description):
                edit = WorkflowDescribed(workflowID: workflowID, description: description, operation: operation, at: apply.now)
            case .addNode(let node):
                if state.removedNodes[node.id] != nil { return reject(.idRetired, "node id '\(node.id)' was used before in this workflow") }
                if graph.nodes[node.id] != nil { return reject(.nodeExists, "node '\(node.id)' exists") }
                if graph.nodes.count >= limits.maxNodes { return reject(.graphTooLarge, "a workflow has at most \(limits.maxNodes) nodes") }
                if configBytes(node.config) > limits.maxConfigBytes {
                    return reject(.configTooLarge, "node '\(node.id)': its config is over \(limits.maxConfigBytes) bytes")
                }
                edit = WorkflowNodeAdded(workflowID: workflowID, node: node, operation: operation, at: apply.now)
            case .moveNode(let node, let position):
                if case let (reason, detail, conflict)? = target(node, missing: .nodeNotFound) { return reject(reason, detail, conflict: conflict) }
                edit = WorkflowNodeMoved(workflowID: workflowID, nodeID: node, position: position, operation: operation, at: apply.now)
            case .relabelNode(let node, let label):
                if case let (reason, detail, conflict)? = target(node, missing: .nodeNotFound) { return reject(reason, detail, conflict: conflict) }
                edit = WorkflowNodeRelabeled(workflowID: workflowID, nodeID: node, label: label, operation: operation, at: apply.now)
            case .setConfig(let node, let field, let value):
                if case let (reason, detail, conflict)? = target(node, missing: .nodeNotFound) { return reject(reason, detail, conflict: conflict) }
                var config = graph.nodes[node]?.config ?? [:]
                config[field] = value
                if configBytes(config) > limits.maxConfigBytes {
                    return reject(.configTooLarge, "node '\(node)': its config would be over \(limits.maxConfigBytes) bytes")
                }
                edit = WorkflowNodeConfigChanged(workflowID: workflowID, nodeID: node, field: field, value: value, operation: operation, at: apply.now)
            case .removeNode(let node):
                if case let (reason, detail, conflict)? = target(node, missing: .nodeNotFound) { return reject(reason, detail, conflict: conflict) }
                edit = WorkflowNodeRemoved(workflowID: workflowID, nodeID: node, removedEdges: graph.edges(touching: node), operation: operation, at: apply.now)
            case .addEdge(let edge):
                for end in [edge.source, edge.target] {
                    if case let (reason, detail, conflict)? = target(end, missing: .danglingEndpoint) { return reject(reason, detail, conflict: conflict) }
                }
                if state.removedEdges[edge.id] != nil { return reject(.idRetired, "edge id '\(edge.id)' was used before in this workflow") }
                if graph.edges[edge.id] != nil { return reject(.edgeExists, "edge '\(edge.id)' exists") }
                if let twin = graph.edges.values.first(where: { $0.endpoints == edge.endpoints }) {
                    return reject(.duplicateEdge, "edge '\(twin.id)' already joins \(edge.source).\(edge.sourcePort) to \(edge.target).\(edge.targetPort)")
                }
                if graph.edges.count >= limits.maxEdges { return reject(.graphTooLarge, "a workflow has at most \(limits.maxEdges) edges") }
                if closesCycle(edge, in: graph) {
                    return reject(.cycle, "an edge from '\(edge.source)' to '\(edge.target)' closes a cycle; only a condition node may close one")
                }
                edit = WorkflowEdgeAdded(workflowID: workflowID, edge: edge, operation: operation, at: apply.now)
            case .removeEdge(let edge):
                if graph.edges[edge] == nil {
                    if let removed = state.removedEdges[edge], removed > base {
                        return reject(.targetDeleted, "edge '\(edge)' was removed at version \(removed)", conflict: removed)
                    }
                    return reject(.edgeNotFound, "there is no edge '\(edge)'")
                }
                edit = WorkflowEdgeRemoved(workflowID: workflowID, edgeID: edge, operation: operation, at: apply.now)
            }
            graph = graph.applying(edit.change)
            events.append(.edited(edit))
        }
        return events
    }

    /// True if `edge` would close a cycle with no condition node on it.
    static func closesCycle(_ edge: WorkflowEdge, in graph: WorkflowGraph) -> Bool {
        func loops(_ node: String) -> Bool { graph.nodes[node].map { loopingTypes.contains($0.type) } ?? false }
        if loops(edge.source) || loops(edge.target) { return false }
        if edge.source == edge.target { return true }
        // Is the source reachable from the target through nodes that cannot loop?
        var next: [String: [String]] = [:]
        for candidate in graph.edges.values { next[candidate.source, default: []].append(candidate.target) }
        var seen: Set<String> = [edge.target]
        var stack = [edge.target]
        while let node = stack.popLast() {
            for successor in next[node] ?? [] where !loops(successor) && seen.insert(successor).inserted {
                if successor == edge.source { return true }
                stack.append(successor)
            }
        }
        return false
    }

    public static func evolve(_ state: State, _ event: WorkflowEvent) -> State {
        var state = state
        let before = state.version
        state.version += 1
        let version = state.version
        switch event {
        case .created(let created):
            state.workflowID = created.workflowID
            state.ownerID = created.ownerID
            state.tenantID = created.tenantID
            state.graph = WorkflowGraph(name: created.name, description: created.description)
            state.draftVersion = version
        case .edited(let edit):
            var overwrote: Int64?
            let base = edit.operation?.baseVersion ?? before
            let start = edit.operation.flatMap { operation in state.folding?.opID == operation.opID ? state.folding?.start : nil } ?? before
            func lastWriter(_ at: Int64?) {
                if let at, at > base, at <= start { overwrote = at }
            }
            switch edit.change {
            case .renamed:
                lastWriter(state.renamedAt)
                state.renamedAt = version
            case .described:
                lastWriter(state.describedAt)
                state.describedAt = version
            case .nodeAdded: break
            case .nodeMoved(let node, _):
                lastWriter(state.movedAt[node])
                state.movedAt[node] = version
            case .nodeRelabeled(let node, _):
                lastWriter(state.relabeledAt[node])
                state.relabeledAt[node] = version
            case .nodeConfigChanged(let node, let field, _):
                lastWriter(state.configChangedAt[FieldKey(node: node, field: field)])
                state.configChangedAt[FieldKey(node: node, field: field)] = version
            case .nodeRemoved(let node, _):
                state.removedNodes[node] = version
                for edge in state.graph.edges(touching: node) { state.removedEdges[edge] = version }
                state.movedAt[node] = nil
                state.relabeledAt[node] = nil
                state.configChangedAt = state.configChangedAt.filter { $0.key.node != node }
            case .edgeAdded: break
            case .edgeRemoved(let edge):
                state.removedEdges[edge] = version
            }
            state.graph = state.graph.applying(edit.change)
            state.draftVersion = version
            if let operation = edit.operation {
                if state.folding?.opID != operation.opID { state.folding = Folding(opID: operation.opID, start: before) }
                let rebased = operation.baseVersion < (state.folding?.start ?? before)
                var ack = state.acks[operation.opID] ?? WorkflowAck(opID: operation.opID, status: rebased ? .rebased : .applied, version: version)
                ack.version = version
                if let overwrote { ack.overwrote.append(overwrote) }
                remember(ack, in: &state)
            }
        case .operationRejected(let rejected):
            remember(
                WorkflowAck(
                    opID: rejected.operation.opID, status: .rejected, version: version, reason: rejected.reason, detail: rejected.detail,
                    conflictVersion: rejected.conflictVersion),
                in: &state)
        case .versionPublished(let published):
            state.published.append(Published(draftVersion: published.draftVersion, contentHash: published.contentHash, graph: published.graph))
        case .draftRestored(let restored):
            // Ids the restore brings back are live again; ids it drops are retired.
            for id in restored.graph.nodes.keys { state.removedNodes[id] = nil }
            for id in restored.graph.edges.keys { state.removedEdges[id] = nil }
            for id in state.graph.nodes.keys where restored.graph.nodes[id] == nil { state.removedNodes[id] = version }
            for id in state.graph.edges.keys where restored.graph.edges[id] == nil { state.removedEdges[id] = version }
            state.graph = restored.graph
            state.restoredAt = version
            state.draftVersion = version
        case .deployed(let deployed):
            state.deployed = deployed.version
        case .deleted:
            state.deleted = true
        }
        if event.edit?.operation == nil { state.folding = nil }
        return state
    }

    static func remember(_ ack: WorkflowAck, in state: inout State) {
        if state.acks.updateValue(ack, forKey: ack.opID) == nil {
            state.ackOrder.append(ack.opID)
            if state.ackOrder.count > ackMemory {
                let dropped = state.ackOrder.count - ackMemory
                for id in state.ackOrder.prefix(dropped) { state.acks[id] = nil }
                state.ackOrder.removeFirst(dropped)
            }
        }
    }

    // MARK: Input checks (the operation's shape, whatever the graph: a refusal records nothing)

    static let idCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")

    static func invalid(_ message: String) -> DomainError { DomainError(.invalid, code: .workflowInvalid, message) }

    static func checkID(_ id: String, _ what: String, max: Int = 64) throws {
        guard (1...max).contains(id.count), id.allSatisfy({ idCharacters.contains($0) }) else {
            throw invalid("\(what) must be 1 to \(max) of a-z, A-Z, 0-9, '-', '_', '.' and ':'")
        }
    }

    static func checkText(_ text: String, _ what: String, max: Int) throws {
        guard text.count <= max else { throw invalid("\(what) is at most \(max) characters") }
    }

    static func checkName(_ name: String) throws {
        guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw invalid("name must not be empty") }
        try checkText(name, "name", max: 200)
    }

    static func checkDescription(_ description: String) throws { try checkText(description, "description", max: 2_000) }

    static func checkPosition(_ position: WorkflowPosition) throws {
        guard position.x.isFinite, position.y.isFinite, abs(position.x) <= 1_000_000, abs(position.y) <= 1_000_000 else {
            throw invalid("a position is two finite numbers within ±1,000,000")
        }
    }

    static func check(_ op: WorkflowOp) throws {
        switch op {
        case .rename(let name): try checkName(name)
        case .describe(let description): try checkDescription(description)
        case .addNode(let node):
            try checkID(node.id, "a node id")
            guard nodeTypes.contains(node.type) else { throw invalid("node type '\(node.type)' is not one of \(nodeTypes.sorted().joined(separator: ", "))") }
            try checkPosition(node.position)
            try checkText(node.label, "a label", max: 200)
            for field in node.config.keys { try checkField(field) }
        case .moveNode(let node, let position):
            try checkID(node, "a node id")
            try checkPosition(position)
        case .relabelNode(let node, let label):
            try checkID(node, "a node id")
            try checkText(label, "a label", max: 200)
        case .setConfig(let node, let field, _):
            try checkID(node, "a node id")
            try checkField(field)
        case .removeNode(let node): try checkID(node, "a node id")
        case .addEdge(let edge):
            try checkID(edge.id, "an edge id")
            try checkID(edge.source, "an edge's source")
            try checkID(edge.target, "an edge's target")
            try checkID(edge.sourcePort, "a port", max: 32)
            try checkID(edge.targetPort, "a port", max: 32)
        case .removeEdge(let edge): try checkID(edge, "an edge id")
        }
    }

    static func checkField(_ field: String) throws {
        guard (1...64).contains(field.count), !field.contains("\0") else { throw invalid("a config field name is 1 to 64 characters") }
    }

    static func configBytes(_ config: [String: JSONValue]) -> Int {
        (try? EventCoding.encode(config).count) ?? Int.max
    }
}
