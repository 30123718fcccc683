import Foundation

// The Workflows module's events (stream `workflow-<id>`): a graph edited by fine-grained events,
// each carrying the client operation (`opId`) it came from, so the log itself answers a retried
// operation and names who changed what (blame, from the event's metadata).

/// A node's place on the canvas.
public struct WorkflowPosition: Codable, Sendable, Hashable {
    public var x: Double
    public var y: Double

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A node of a workflow graph. Its id is chosen by the client and never reused in its workflow.
public struct WorkflowNode: Codable, Sendable, Hashable {
    public var id: String
    public var type: String
    public var position: WorkflowPosition
    public var label: String
    /// The node's configuration, field by field: concurrent edits of different fields commute.
    public var config: [String: JSONValue]

    public init(id: String, type: String, position: WorkflowPosition, label: String, config: [String: JSONValue]) {
        self.id = id
        self.type = type
        self.position = position
        self.label = label
        self.config = config
    }
}

/// An edge from a node's output port to another node's input port.
public struct WorkflowEdge: Codable, Sendable, Hashable {
    public var id: String
    public var source: String
    public var sourcePort: String
    public var target: String
    public var targetPort: String

    public init(id: String, source: String, sourcePort: String, target: String, targetPort: String) {
        self.id = id
        self.source = source
        self.sourcePort = sourcePort
        self.target = target
        self.targetPort = targetPort
    }

    /// What makes two edges the same edge, whatever their ids.
    public var endpoints: [String] { [source, sourcePort, target, targetPort] }
}

/// A workflow's content: what a version freezes and its content hash covers.
public struct WorkflowGraph: Codable, Sendable, Hashable {
    public var name: String
    public var description: String
    public var nodes: [String: WorkflowNode]
    public var edges: [String: WorkflowEdge]

    public init(name: String = "", description: String = "", nodes: [String: WorkflowNode] = [:], edges: [String: WorkflowEdge] = [:]) {
        self.name = name
        self.description = description
        self.nodes = nodes
        self.edges = edges
    }

    /// The edges touching `node`, by id, sorted.
    public func edges(touching node: String) -> [String] {
        edges.values.filter { $0.source == node || $0.target == node }.map(\.id).sorted()
    }
}

public struct WorkflowCreated: DomainEvent {
    public static let eventType = "WorkflowCreated"
    public var workflowID: UUID
    public var ownerID: String
    public var tenantID: String?
    public var name: String
    public var description: String
    public var createdAt: Date

    public init(workflowID: UUID, ownerID: String, tenantID: String?, name: String, description: String, createdAt: Date) {
        self.workflowID = workflowID
        self.ownerID = ownerID
        self.tenantID = tenantID
        self.name = name
        self.description = description
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case ownerID = "ownerId"
        case tenantID = "tenantId"
        case name, description, createdAt
    }
}

/// The fields every graph edit carries: which client operation it came from, and the draft
/// version that client had seen.
public struct WorkflowOperation: Codable, Sendable, Hashable {
    public var opID: String
    public var baseVersion: Int64

    public init(opID: String, baseVersion: Int64) {
        self.opID = opID
        self.baseVersion = baseVersion
    }

    enum CodingKeys: String, CodingKey {
        case opID = "opId"
        case baseVersion
    }
}

/// One change to the graph. Every case is its own stored event type (`WorkflowNodeAdded`, ...).
public enum WorkflowChange: Sendable, Hashable {
    case renamed(name: String)
    case described(description: String)
    case nodeAdded(WorkflowNode)
    case nodeMoved(node: String, position: WorkflowPosition)
    case nodeRelabeled(node: String, label: String)
    /// A nil value removes the field.
    case nodeConfigChanged(node: String, field: String, value: JSONValue?)
    /// Removes the node and, listed, the edges that touched it.
    case nodeRemoved(node: String, removedEdges: [String])
    case edgeAdded(WorkflowEdge)
    case edgeRemoved(edge: String)
}

extension WorkflowGraph {
    /// The graph after `change`. Total: a change that no longer applies (it cannot happen in a
    /// decided stream) changes nothing.
    public func applying(_ change: WorkflowChange) -> WorkflowGraph {
        var graph = self
        switch change {
        case .renamed(let name): graph.name = name
        case .described(let description): graph.description = description
        case .nodeAdded(let node): graph.nodes[node.id] = node
        case .nodeMoved(let node, let position): graph.nodes[node]?.position = position
        case .nodeRelabeled(let node, let label): graph.nodes[node]?.label = label
        case .nodeConfigChanged(let node, let field, let value): graph.nodes[node]?.config[field] = value
        case .nodeRemoved(let node, let removedEdges):
            graph.nodes[node] = nil
            for edge in removedEdges { graph.edges[edge] = nil }
            // And any edge the list missed: a graph never keeps a dangling edge.
            for edge in graph.edges(touching: node) { graph.edges[edge] = nil }
        case .edgeAdded(let edge): graph.edges[edge.id] = edge
        case .edgeRemoved(let edge): graph.edges[edge] = nil
        }
        return graph
    }
}

/// A graph edit. One event type per kind of change (below); each carries its operation.
public protocol WorkflowEditEvent: DomainEvent {
    var workflowID: UUID { get }
    var operation: WorkflowOperation? { get }
    var change: WorkflowChange { get }
}

public struct WorkflowRenamed: WorkflowEditEvent {
    public static let eventType = "WorkflowRenamed"
    public var workflowID: UUID
    public var name: String
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .renamed(name: name) }

    public init(workflowID: UUID, name: String, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.name = name
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case name, operation, at
    }
}

public struct WorkflowDescribed: WorkflowEditEvent {
    public static let eventType = "WorkflowDescribed"
    public var workflowID: UUID
    public var description: String
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .described(description: description) }

    public init(workflowID: UUID, description: String, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.description = description
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case description, operation, at
    }
}

public struct WorkflowNodeAdded: WorkflowEditEvent {
    public static let eventType = "WorkflowNodeAdded"
    public var workflowID: UUID
    public var node: WorkflowNode
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .nodeAdded(node) }

    public init(workflowID: UUID, node: WorkflowNode, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.node = node
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case node, operation, at
    }
}

public struct WorkflowNodeMoved: WorkflowEditEvent {
    public static let eventType = "WorkflowNodeMoved"
    public var workflowID: UUID
    public var nodeID: String
    public var position: WorkflowPosition
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .nodeMoved(node: nodeID, position: position) }

    public init(workflowID: UUID, nodeID: String, position: WorkflowPosition, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.nodeID = nodeID
        self.position = position
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case nodeID = "nodeId"
        case position, operation, at
    }
}

public struct WorkflowNodeRelabeled: WorkflowEditEvent {
    public static let eventType = "WorkflowNodeRelabeled"
    public var workflowID: UUID
    public var nodeID: String
    public var label: String
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .nodeRelabeled(node: nodeID, label: label) }

    public init(workflowID: UUID, nodeID: String, label: String, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.nodeID = nodeID
        self.label = label
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case nodeID = "nodeId"
        case label, operation, at
    }
}

/// One field of a node's configuration set (or removed: `value` absent).
public struct WorkflowNodeConfigChanged: WorkflowEditEvent {
    public static let eventType = "WorkflowNodeConfigChanged"
    public var workflowID: UUID
    public var nodeID: String
    public var field: String
    public var value: JSONValue?
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .nodeConfigChanged(node: nodeID, field: field, value: value) }

    public init(workflowID: UUID, nodeID: String, field: String, value: JSONValue?, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.nodeID = nodeID
        self.field = field
        self.value = value
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case nodeID = "nodeId"
        case field, value, operation, at
    }
}

public struct WorkflowNodeRemoved: WorkflowEditEvent {
    public static let eventType = "WorkflowNodeRemoved"
    public var workflowID: UUID
    public var nodeID: String
    /// The edges removed with it.
    public var removedEdges: [String]
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .nodeRemoved(node: nodeID, removedEdges: removedEdges) }

    public init(workflowID: UUID, nodeID: String, removedEdges: [String], operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.nodeID = nodeID
        self.removedEdges = removedEdges
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case nodeID = "nodeId"
        case removedEdges, operation, at
    }
}

public struct WorkflowEdgeAdded: WorkflowEditEvent {
    public static let eventType = "WorkflowEdgeAdded"
    public var workflowID: UUID
    public var edge: WorkflowEdge
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .edgeAdded(edge) }

    public init(workflowID: UUID, edge: WorkflowEdge, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.edge = edge
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case edge, operation, at
    }
}

public struct WorkflowEdgeRemoved: WorkflowEditEvent {
    public static let eventType = "WorkflowEdgeRemoved"
    public var workflowID: UUID
    public var edgeID: String
    public var operation: WorkflowOperation?
    public var at: Date
    public var change: WorkflowChange { .edgeRemoved(edge: edgeID) }

    public init(workflowID: UUID, edgeID: String, operation: WorkflowOperation?, at: Date) {
        self.workflowID = workflowID
        self.edgeID = edgeID
        self.operation = operation
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case edgeID = "edgeId"
        case operation, at
    }
}

/// A client operation the server refused, recorded so that its retry gets the same answer and
/// appends nothing. `conflictVersion`: the event that made it impossible, when one did (a node
/// removed since the operation's base).
public struct WorkflowOperationRejected: DomainEvent {
    public static let eventType = "WorkflowOperationRejected"
    public var workflowID: UUID
    public var operation: WorkflowOperation
    public var reason: String
    public var detail: String
    public var conflictVersion: Int64?
    public var at: Date

    public init(workflowID: UUID, operation: WorkflowOperation, reason: String, detail: String, conflictVersion: Int64?, at: Date) {
        self.workflowID = workflowID
        self.operation = operation
        self.reason = reason
        self.detail = detail
        self.conflictVersion = conflictVersion
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case operation, reason, detail, conflictVersion, at
    }
}

/// A published version: the draft as of `draftVersion`, frozen with its content hash.
public struct WorkflowVersionPublished: DomainEvent {
    public static let eventType = "WorkflowVersionPublished"
    public var workflowID: UUID
    /// 1, 2, ... in order of publication.
    public var version: Int
    /// The stream version of the draft that was published.
    public var draftVersion: Int64
    public var contentHash: String
    public var graph: WorkflowGraph
    public var note: String?
    public var publishedAt: Date

    public init(workflowID: UUID, version: Int, draftVersion: Int64, contentHash: String, graph: WorkflowGraph, note: String?, publishedAt: Date) {
        self.workflowID = workflowID
        self.version = version
        self.draftVersion = draftVersion
        self.contentHash = contentHash
        self.graph = graph
        self.note = note
        self.publishedAt = publishedAt
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case version, draftVersion, contentHash, graph, note, publishedAt
    }
}

/// The draft set back to a published version's graph, as a new event: nothing is destroyed.
public struct WorkflowDraftRestored: DomainEvent {
    public static let eventType = "WorkflowDraftRestored"
    public var workflowID: UUID
    public var fromVersion: Int
    public var graph: WorkflowGraph
    public var at: Date

    public init(workflowID: UUID, fromVersion: Int, graph: WorkflowGraph, at: Date) {
        self.workflowID = workflowID
        self.fromVersion = fromVersion
        self.graph = graph
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case fromVersion, graph, at
    }
}

/// A published version deployed (the seed's `WorkflowDeployed`; `workflow.deployed` goes out).
public struct WorkflowDeployed: DomainEvent {
    public static let eventType = "WorkflowDeployed"
    public var workflowID: UUID
    public var ownerID: String
    public var version: Int
    public var contentHash: String
    public var deployedAt: Date

    public init(workflowID: UUID, ownerID: String, version: Int, contentHash: String, deployedAt: Date) {
        self.workflowID = workflowID
        self.ownerID = ownerID
        self.version = version
        self.contentHash = contentHash
        self.deployedAt = deployedAt
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case ownerID = "ownerId"
        case version, contentHash, deployedAt
    }
}

public struct WorkflowDeleted: DomainEvent {
    public static let eventType = "WorkflowDeleted"
    public var workflowID: UUID
    public var deletedAt: Date

    public init(workflowID: UUID, deletedAt: Date) {
        self.workflowID = workflowID
        self.deletedAt = deletedAt
    }

    enum CodingKeys: String, CodingKey {
        case workflowID = "workflowId"
        case deletedAt
    }
}

/// The events of a workflow's stream.
public enum WorkflowEvent: EventFamily, Equatable {
    public static var registry: EventRegistry { .workflows }

    case created(WorkflowCreated)
    case edited(any WorkflowEditEvent)
    case operationRejected(WorkflowOperationRejected)
    case versionPublished(WorkflowVersionPublished)
    case draftRestored(WorkflowDraftRestored)
    case deployed(WorkflowDeployed)
    case deleted(WorkflowDeleted)

    public var payload: any DomainEvent {
        switch self {
        case .created(let event): event
        case .edited(let event): event
        case .operationRejected(let event): event
        case .versionPublished(let event): event
        case .draftRestored(let event): event
        case .deployed(let event): event
        case .deleted(let event): event
        }
    }

    public init?(payload: any DomainEvent) {
        switch payload {
        case let event as WorkflowCreated: self = .created(event)
        case let event as any WorkflowEditEvent: self = .edited(event)
        case let event as WorkflowOperationRejected: self = .operationRejected(event)
        case let event as WorkflowVersionPublished: self = .versionPublished(event)
        case let event as WorkflowDraftRestored: self = .draftRestored(event)
        case let event as WorkflowDeployed: self = .deployed(event)
        case let event as WorkflowDeleted: self = .deleted(event)
        default: return nil
        }
    }

    public static func == (lhs: WorkflowEvent, rhs: WorkflowEvent) -> Bool {
        (try? EventCoding.encode(lhs.payload)) == (try? EventCoding.encode(rhs.payload)) && type(of: lhs.payload).eventType == type(of: rhs.payload).eventType
    }

    /// The graph edit, if this is one.
    public var edit: (any WorkflowEditEvent)? {
        if case .edited(let event) = self { event } else { nil }
    }
}

extension EventRegistry {
    /// The stored event types of the Workflows module.
    public static let workflows: EventRegistry = {
        var registry = EventRegistry()
        registry.register(WorkflowCreated.self)
        registry.register(WorkflowRenamed.self)
        registry.register(WorkflowDescribed.self)
        registry.register(WorkflowNodeAdded.self)
        registry.register(WorkflowNodeMoved.self)
        registry.register(WorkflowNodeRelabeled.self)
        registry.register(WorkflowNodeConfigChanged.self)
        registry.register(WorkflowNodeRemoved.self)
        registry.register(WorkflowEdgeAdded.self)
        registry.register(WorkflowEdgeRemoved.self)
        registry.register(WorkflowOperationRejected.self)
        registry.register(WorkflowVersionPublished.self)
        registry.register(WorkflowDraftRestored.self)
        registry.register(WorkflowDeployed.self)
        registry.register(WorkflowDeleted.self)
        return registry
    }()
}

extension IntegrationContract {
    /// What the Workflows module publishes.
    public static let workflows: [IntegrationContract] = [
        IntegrationContract(eventType: WorkflowDeployed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "workflow.deployed"),
    ]
}
