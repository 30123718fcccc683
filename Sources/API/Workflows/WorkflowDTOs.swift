import Commands
import Events
import Foundation
import Projections

/// The Workflows module's JSON shapes (snake_case, as in openapi.yaml). The same operation and
/// acknowledgement shapes travel over HTTP (`PATCH /workflows/{id}`) and the live socket.
enum WorkflowDTO {
    static func iso(_ date: Date) -> String { Timestamp.format(date) }
    static func id(_ id: UUID) -> String { id.uuidString.lowercased() }

    struct Create: Decodable {
        var name: String
        var description: String?
    }

    struct Position: Codable {
        var x: Double
        var y: Double
    }

    struct Node: Codable {
        var id: String
        var type: String
        var label: String?
        var position: Position?
        var config: [String: JSONValue]?

        init(_ node: WorkflowNode) {
            id = node.id
            type = node.type
            label = node.label
            position = Position(x: node.position.x, y: node.position.y)
            config = node.config
        }

        var model: WorkflowNode {
            WorkflowNode(
                id: id, type: type, position: WorkflowPosition(x: position?.x ?? 0, y: position?.y ?? 0), label: label ?? "", config: config ?? [:])
        }
    }

    struct Edge: Codable {
        var id: String
        var source: String
        var sourcePort: String?
        var target: String
        var targetPort: String?

        enum CodingKeys: String, CodingKey {
            case id, source, target
            case sourcePort = "source_port"
            case targetPort = "target_port"
        }

        init(_ edge: WorkflowEdge) {
            id = edge.id
            source = edge.source
            sourcePort = edge.sourcePort
            target = edge.target
            targetPort = edge.targetPort
        }

        var model: WorkflowEdge {
            WorkflowEdge(id: id, source: source, sourcePort: sourcePort ?? "out", target: target, targetPort: targetPort ?? "in")
        }
    }

    /// One operation: `{"op": "move_node", "node": "n1", "position": {"x": 1, "y": 2}}`, ...
    struct Op: Codable {
        var op: WorkflowOp

        enum Keys: String, CodingKey { case op, name, description, node, position, label, field, value, edge }

        init(_ op: WorkflowOp) { self.op = op }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            let kind = try container.decode(String.self, forKey: .op)
            switch kind {
            case "rename": op = .rename(name: try container.decode(String.self, forKey: .name))
            case "describe": op = .describe(description: try container.decode(String.self, forKey: .description))
            case "add_node": op = .addNode(try container.decode(Node.self, forKey: .node).model)
            case "move_node":
                let position = try container.decode(Position.self, forKey: .position)
                op = .moveNode(node: try container.decode(String.self, forKey: .node), position: WorkflowPosition(x: position.x, y: position.y))
            case "relabel_node":
                op = .relabelNode(node: try container.decode(String.self, forKey: .node), label: try container.decode(String.self, forKey: .label))
            case "set_config":
                // `value` null or absent removes the field.
                let value = try container.decodeIfPresent(JSONValue.self, forKey: .value)
                op = .setConfig(
                    node: try container.decode(String.self, forKey: .node), field: try container.decode(String.self, forKey: .field),
                    value: value == .null ? nil : value)
            case "remove_node": op = .removeNode(node: try container.decode(String.self, forKey: .node))
            case "add_edge": op = .addEdge(try container.decode(Edge.self, forKey: .edge).model)
            case "remove_edge": op = .removeEdge(edge: try container.decode(String.self, forKey: .edge))
            default:
                throw DecodingError.dataCorruptedError(
                    forKey: .op, in: container,
                    debugDescription: "op must be one of rename, describe, add_node, move_node, relabel_node, set_config, remove_node, add_edge, remove_edge")
            }
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            switch op {
            case .rename(let name):
                try container.encode("rename", forKey: .op)
                try container.encode(name, forKey: .name)
            case .describe(let description):
                try container.encode("describe", forKey: .op)
                try container.encode(description, forKey: .description)
            case .addNode(let node):
                try container.encode("add_node", forKey: .op)
                try container.encode(Node(node), forKey: .node)
            case .moveNode(let node, let position):
                try container.encode("move_node", forKey: .op)
                try container.encode(node, forKey: .node)
                try container.encode(Position(x: position.x, y: position.y), forKey: .position)
            case .relabelNode(let node, let label):
                try container.encode("relabel_node", forKey: .op)
                try container.encode(node, forKey: .node)
                try container.encode(label, forKey: .label)
            case .setConfig(let node, let field, let value):
                try container.encode("set_config", forKey: .op)
                try container.encode(node, forKey: .node)
                try container.encode(field, forKey: .field)
                try container.encode(value ?? .null, forKey: .value)
            case .removeNode(let node):
                try container.encode("remove_node", forKey: .op)
                try container.encode(node, forKey: .node)
            case .addEdge(let edge):
                try container.encode("add_edge", forKey: .op)
                try container.encode(Edge(edge), forKey: .edge)
            case .removeEdge(let edge):
                try container.encode("remove_edge", forKey: .op)
                try container.encode(edge, forKey: .edge)
            }
        }

        /// The operation an edit event records, in the same shape a client sends.
        init(_ change: WorkflowChange) {
            switch change {
            case .renamed(let name): op = .rename(name: name)
            case .described(let description): op = .describe(description: description)
            case .nodeAdded(let node): op = .addNode(node)
            case .nodeMoved(let node, let position): op = .moveNode(node: node, position: position)
            case .nodeRelabeled(let node, let label): op = .relabelNode(node: node, label: label)
            case .nodeConfigChanged(let node, let field, let value): op = .setConfig(node: node, field: field, value: value)
            case .nodeRemoved(let node, _): op = .removeNode(node: node)
            case .edgeAdded(let edge): op = .addEdge(edge)
            case .edgeRemoved(let edge): op = .removeEdge(edge: edge)
            }
        }
    }

    /// A batched edit: `ops` applied together, based on `base_version` (or the `If-Match` ETag).
    struct Edit: Decodable {
        var opID: String?
        var baseVersion: Int64?
        var ops: [Op]

        enum CodingKeys: String, CodingKey {
            case ops
            case opID = "op_id"
            case baseVersion = "base_version"
        }
    }

    struct Ack: Encodable {
        var opID: String
        var status: String
        var version: Int64
        var reason: String?
        var detail: String?
        var conflictVersion: Int64?
        var overwrote: [Int64]

        enum CodingKeys: String, CodingKey {
            case status, version, reason, detail, overwrote
            case opID = "op_id"
            case conflictVersion = "conflict_version"
        }

        init(_ ack: WorkflowAck) {
            opID = ack.opID
            status = ack.status.rawValue
            version = ack.version
            reason = ack.reason
            detail = ack.detail
            conflictVersion = ack.conflictVersion
            overwrote = ack.overwrote
        }
    }

    /// A workflow's draft (or its graph as of a version).
    struct Workflow: Encodable {
        var id: String
        var ownerID: String
        var name: String
        var description: String
        /// The stream version: the ETag, and the base of the next edit.
        var version: Int64
        var draftVersion: Int64
        var contentHash: String
        var publishedVersions: Int
        var deployedVersion: Int?
        var nodes: [Node]
        var edges: [Edge]
        var atVersion: Int64?
        var createdAt: String?
        var updatedAt: String?

        enum CodingKeys: String, CodingKey {
            case id, name, description, version, nodes, edges
            case ownerID = "owner_id"
            case draftVersion = "draft_version"
            case contentHash = "content_hash"
            case publishedVersions = "published_versions"
            case deployedVersion = "deployed_version"
            case atVersion = "at_version"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        init(
            id: UUID, ownerID: String, graph: WorkflowGraph, version: Int64, draftVersion: Int64, published: Int, deployed: Int?, atVersion: Int64? = nil,
            createdAt: Date? = nil, updatedAt: Date? = nil
        ) {
            self.id = WorkflowDTO.id(id)
            self.ownerID = ownerID
            name = graph.name
            description = graph.description
            self.version = version
            self.draftVersion = draftVersion
            contentHash = graph.contentHash
            publishedVersions = published
            deployedVersion = deployed
            nodes = graph.nodes.values.sorted { $0.id < $1.id }.map(Node.init)
            edges = graph.edges.values.sorted { $0.id < $1.id }.map(Edge.init)
            self.atVersion = atVersion
            self.createdAt = createdAt.map(WorkflowDTO.iso)
            self.updatedAt = updatedAt.map(WorkflowDTO.iso)
        }

        init(_ view: WorkflowView) {
            self.init(
                id: view.id, ownerID: view.ownerID, graph: view.graph, version: view.version, draftVersion: view.draftVersion, published: view.published,
                deployed: view.deployed, createdAt: view.createdAt, updatedAt: view.updatedAt)
        }

        init(_ id: UUID, _ state: WorkflowDecider.State, version: Int64, atVersion: Int64? = nil) {
            self.init(
                id: id, ownerID: state.ownerID ?? "", graph: state.graph, version: version, draftVersion: state.draftVersion, published: state.published.count,
                deployed: state.deployed, atVersion: atVersion)
        }
    }

    struct Summary: Encodable {
        var id: String
        var ownerID: String
        var name: String
        var description: String
        var version: Int64
        var publishedVersions: Int
        var deployedVersion: Int?
        var nodeCount: Int
        var edgeCount: Int
        var createdAt: String
        var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case id, name, description, version
            case ownerID = "owner_id"
            case publishedVersions = "published_versions"
            case deployedVersion = "deployed_version"
            case nodeCount = "node_count"
            case edgeCount = "edge_count"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        init(_ summary: WorkflowSummary) {
            id = WorkflowDTO.id(summary.id)
            ownerID = summary.ownerID
            name = summary.name
            description = summary.description
            version = summary.version
            publishedVersions = summary.published
            deployedVersion = summary.deployed
            nodeCount = summary.nodes
            edgeCount = summary.edges
            createdAt = WorkflowDTO.iso(summary.createdAt)
            updatedAt = WorkflowDTO.iso(summary.updatedAt)
        }
    }

    struct Publish: Decodable {
        var draftVersion: Int64
        var contentHash: String
        var note: String?

        enum CodingKeys: String, CodingKey {
            case note
            case draftVersion = "draft_version"
            case contentHash = "content_hash"
        }
    }

    struct Version: Encodable {
        var version: Int
        var draftVersion: Int64
        var contentHash: String
        var note: String?
        var publishedBy: String?
        var publishedAt: String?
        var deployed: Bool
        var nodes: [Node]?
        var edges: [Edge]?
        var name: String?
        var description: String?

        enum CodingKeys: String, CodingKey {
            case version, note, deployed, nodes, edges, name, description
            case draftVersion = "draft_version"
            case contentHash = "content_hash"
            case publishedBy = "published_by"
            case publishedAt = "published_at"
        }

        init(_ view: WorkflowVersionView, deployed: Int?) {
            version = view.version
            draftVersion = view.draftVersion
            contentHash = view.contentHash
            note = view.note
            publishedBy = view.publishedBy
            publishedAt = WorkflowDTO.iso(view.publishedAt)
            self.deployed = deployed == view.version
        }

        init(number: Int, _ published: WorkflowDecider.Published, deployed: Int?) {
            version = number
            draftVersion = published.draftVersion
            contentHash = published.contentHash
            self.deployed = deployed == number
            nodes = published.graph.nodes.values.sorted { $0.id < $1.id }.map(Node.init)
            edges = published.graph.edges.values.sorted { $0.id < $1.id }.map(Edge.init)
            name = published.graph.name
            description = published.graph.description
        }
    }

    struct Versions: Encodable {
        var items: [Version]
    }

    struct Deployed: Encodable {
        var deployedVersion: Int
        var contentHash: String

        enum CodingKeys: String, CodingKey {
            case deployedVersion = "deployed_version"
            case contentHash = "content_hash"
        }
    }

    struct FieldChange: Encodable {
        var field: String
        var key: String?
        var from: JSONValue?
        var to: JSONValue?

        init(_ change: WorkflowDiff.FieldChange) {
            field = change.field
            key = change.key
            from = change.from
            to = change.to
        }
    }

    struct Changed: Encodable {
        var id: String
        var fields: [FieldChange]
    }

    struct Diff: Encodable {
        var from: String
        var to: String
        var workflow: [FieldChange]
        var nodesAdded: [Node]
        var nodesRemoved: [Node]
        var nodesChanged: [Changed]
        var edgesAdded: [Edge]
        var edgesRemoved: [Edge]
        var edgesChanged: [Changed]

        enum CodingKeys: String, CodingKey {
            case from, to, workflow
            case nodesAdded = "nodes_added"
            case nodesRemoved = "nodes_removed"
            case nodesChanged = "nodes_changed"
            case edgesAdded = "edges_added"
            case edgesRemoved = "edges_removed"
            case edgesChanged = "edges_changed"
        }

        init(from: String, to: String, _ diff: WorkflowDiff) {
            self.from = from
            self.to = to
            workflow = diff.workflow.map(FieldChange.init)
            nodesAdded = diff.nodesAdded.map(Node.init)
            nodesRemoved = diff.nodesRemoved.map(Node.init)
            nodesChanged = diff.nodesChanged.map { Changed(id: $0.id, fields: $0.fields.map(FieldChange.init)) }
            edgesAdded = diff.edgesAdded.map(Edge.init)
            edgesRemoved = diff.edgesRemoved.map(Edge.init)
            edgesChanged = diff.edgesChanged.map { Changed(id: $0.id, fields: $0.fields.map(FieldChange.init)) }
        }
    }

    struct Blame: Encodable {
        var userID: String?
        var version: Int64
        var at: String

        enum CodingKeys: String, CodingKey {
            case version, at
            case userID = "user_id"
        }

        init(_ blame: WorkflowBlame) {
            userID = blame.userID
            version = blame.version
            at = WorkflowDTO.iso(blame.at)
        }
    }

    struct NodeBlame: Encodable {
        var added: Blame?
        var label: Blame?
        var position: Blame?
        var config: [String: Blame]
    }

    /// Who last changed each part of the draft: the workflow's name and description, each node
    /// (added, label, position, each config field) and each edge. A part nobody changed since it
    /// was added is blamed on whoever added it.
    struct BlameReport: Encodable {
        var version: Int64
        var workflow: [String: Blame]
        var nodes: [String: NodeBlame]
        var edges: [String: Blame]

        init(_ view: WorkflowView) {
            version = view.version
            workflow = view.blame.mapValues(Blame.init)
            var nodes: [String: NodeBlame] = [:]
            for (id, node) in view.graph.nodes {
                let blame = view.nodeBlame[id]
                let added = blame?.added
                var config: [String: Blame] = [:]
                for key in node.config.keys {
                    if let changed = blame?.config[key] ?? added { config[key] = Blame(changed) }
                }
                nodes[id] = NodeBlame(
                    added: added.map(Blame.init), label: (blame?.label ?? added).map(Blame.init), position: (blame?.position ?? added).map(Blame.init),
                    config: config)
            }
            self.nodes = nodes
            edges = view.edgeBlame.mapValues(Blame.init)
        }
    }
}
