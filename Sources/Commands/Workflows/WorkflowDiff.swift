import Events
import Foundation

/// A semantic diff between two workflow graphs: nodes and edges added, removed or changed, and
/// each change per field (a config change per config key), in a stable order (by id, then field).
public struct WorkflowDiff: Sendable, Hashable {
    /// One field that differs: `field` is `name`, `description`, `type`, `label`, `position`,
    /// `config` (with `key`), `source`, `source_port`, `target` or `target_port`. A nil side is
    /// absent (a config key added or removed).
    public struct FieldChange: Sendable, Hashable {
        public var field: String
        public var key: String?
        public var from: JSONValue?
        public var to: JSONValue?

        public init(field: String, key: String? = nil, from: JSONValue?, to: JSONValue?) {
            self.field = field
            self.key = key
            self.from = from
            self.to = to
        }
    }

    /// A node or an edge present on both sides with some fields changed.
    public struct Changed: Sendable, Hashable {
        public var id: String
        public var fields: [FieldChange]

        public init(id: String, fields: [FieldChange]) {
            self.id = id
            self.fields = fields
        }
    }

    public var workflow: [FieldChange] = []
    public var nodesAdded: [WorkflowNode] = []
    public var nodesRemoved: [WorkflowNode] = []
    public var nodesChanged: [Changed] = []
    public var edgesAdded: [WorkflowEdge] = []
    public var edgesRemoved: [WorkflowEdge] = []
    public var edgesChanged: [Changed] = []

    public var isEmpty: Bool {
        workflow.isEmpty && nodesAdded.isEmpty && nodesRemoved.isEmpty && nodesChanged.isEmpty && edgesAdded.isEmpty && edgesRemoved.isEmpty
            && edgesChanged.isEmpty
    }

    public init(from old: WorkflowGraph, to new: WorkflowGraph) {
        if old.name != new.name { workflow.append(FieldChange(field: "name", from: .string(old.name), to: .string(new.name))) }
        if old.description != new.description {
            workflow.append(FieldChange(field: "description", from: .string(old.description), to: .string(new.description)))
        }
        for id in Set(old.nodes.keys).union(new.nodes.keys).sorted() {
            switch (old.nodes[id], new.nodes[id]) {
            case (nil, let added?): nodesAdded.append(added)
            case (let removed?, nil): nodesRemoved.append(removed)
            case (let before?, let after?):
                let fields = Self.fields(before, after)
                if !fields.isEmpty { nodesChanged.append(Changed(id: id, fields: fields)) }
            case (nil, nil): break
            }
        }
        for id in Set(old.edges.keys).union(new.edges.keys).sorted() {
            switch (old.edges[id], new.edges[id]) {
            case (nil, let added?): edgesAdded.append(added)
            case (let removed?, nil): edgesRemoved.append(removed)
            case (let before?, let after?):
                var fields: [FieldChange] = []
                for (name, a, b) in [
                    ("source", before.source, after.source), ("source_port", before.sourcePort, after.sourcePort), ("target", before.target, after.target),
                    ("target_port", before.targetPort, after.targetPort),
                ] where a != b {
                    fields.append(FieldChange(field: name, from: .string(a), to: .string(b)))
                }
                if !fields.isEmpty { edgesChanged.append(Changed(id: id, fields: fields)) }
            case (nil, nil): break
            }
        }
    }

    static func position(_ position: WorkflowPosition) -> JSONValue { .object(["x": .number(position.x), "y": .number(position.y)]) }

    static func fields(_ before: WorkflowNode, _ after: WorkflowNode) -> [FieldChange] {
        var fields: [FieldChange] = []
        if before.type != after.type { fields.append(FieldChange(field: "type", from: .string(before.type), to: .string(after.type))) }
        if before.label != after.label { fields.append(FieldChange(field: "label", from: .string(before.label), to: .string(after.label))) }
        if before.position != after.position {
            fields.append(FieldChange(field: "position", from: position(before.position), to: position(after.position)))
        }
        for key in Set(before.config.keys).union(after.config.keys).sorted() where before.config[key] != after.config[key] {
            fields.append(FieldChange(field: "config", key: key, from: before.config[key], to: after.config[key]))
        }
        return fields
    }
}
