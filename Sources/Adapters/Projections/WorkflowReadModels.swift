import Commands
import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `WorkflowQueries` over `workflows`, `workflow_nodes`, `workflow_edges` and `workflow_versions`
/// (read through their views, so a rebuild's swap is invisible).
public struct WorkflowReadModels: WorkflowQueries {
    let client: PostgresClient
    let store: PostgresProjectionStore<WorkflowsProjection>
    let logger: Logger

    public init(client: PostgresClient, store: PostgresProjectionStore<WorkflowsProjection>, logger: Logger) {
        self.client = client
        self.store = store
        self.logger = logger
    }

    static func json<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? EventCoding.decode(type, from: PostgresText.decodeJSON(Data(text.utf8)))
    }

    public func workflows(owner: String?, page: Int, pageSize: Int) async throws -> Page<WorkflowSummary> {
        try await readModel(orIfAbsent: Page(items: [], page: page, pageSize: pageSize, totalCount: 0)) {
            var items: [WorkflowSummary] = []
            var total = 0
            let rows = try await client.query("""
                SELECT w.workflow_id, w.owner_id, w.name, w.description, w.version, w.published, w.deployed,
                       (SELECT count(*) FROM workflow_nodes n WHERE n.workflow_id = w.workflow_id),
                       (SELECT count(*) FROM workflow_edges e WHERE e.workflow_id = w.workflow_id),
                       w.created_at, w.updated_at
                FROM workflows w WHERE NOT w.deleted AND (\(owner)::text IS NULL OR w.owner_id = \(owner))
                ORDER BY w.created_at, w.workflow_id LIMIT \(pageSize) OFFSET \((page - 1) * pageSize)
                """, logger: logger)
            for try await row in rows.decode((UUID, String, String, String, Int64, Int32, Int32?, Int64, Int64, Date, Date).self) {
                items.append(WorkflowSummary(
                    id: row.0, ownerID: row.1, name: PostgresText.decode(row.2), description: PostgresText.decode(row.3), version: row.4,
                    published: Int(row.5), deployed: row.6.map(Int.init), nodes: Int(row.7), edges: Int(row.8), createdAt: row.9, updatedAt: row.10))
            }
            let counted = try await client.query(
                "SELECT count(*) FROM workflows WHERE NOT deleted AND (\(owner)::text IS NULL OR owner_id = \(owner))", logger: logger)
            for try await count in counted.decode(Int64.self) { total = Int(count) }
            return Page(items: items, page: page, pageSize: pageSize, totalCount: total)
        }
    }

    struct StoredNodeBlame: Decodable {
        var added: WorkflowBlame?
        var label: WorkflowBlame?
        var position: WorkflowBlame?
        var config: [String: WorkflowBlame]?
    }

    struct StoredEdgeBlame: Decodable {
        var added: WorkflowBlame?
    }

    public func workflow(_ id: UUID) async throws -> WorkflowView? {
        try await readModel(orIfAbsent: nil) {
            // One snapshot for the three tables: the row, its nodes and its edges agree.
            try await client.withConnection { connection in
                try await connection.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
                do {
                    let view = try await read(id, on: connection)
                    try await connection.query("COMMIT", logger: logger)
                    return view
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
            }
        }
    }

    func read(_ id: UUID, on connection: PostgresConnection) async throws -> WorkflowView? {
        var view: WorkflowView?
        let rows = try await connection.query("""
            SELECT owner_id, name, description, version, draft_version, published, deployed, blame::text, created_at, updated_at
            FROM workflows WHERE workflow_id = \(id) AND NOT deleted
            """, logger: logger)
        for try await row in rows.decode((String, String, String, Int64, Int64, Int32, Int32?, String, Date, Date).self) {
            view = WorkflowView(
                id: id, ownerID: row.0, version: row.3, draftVersion: row.4, published: Int(row.5), deployed: row.6.map(Int.init),
                graph: WorkflowGraph(name: PostgresText.decode(row.1), description: PostgresText.decode(row.2)),
                blame: Self.json([String: WorkflowBlame].self, row.7) ?? [:], nodeBlame: [:], edgeBlame: [:], createdAt: row.8, updatedAt: row.9)
        }
        guard var found = view else { return nil }
        let nodes = try await connection.query(
            "SELECT node_id, type, label, x, y, config::text, blame::text FROM workflow_nodes WHERE workflow_id = \(id)", logger: logger)
        for try await row in nodes.decode((String, String, String, Double, Double, String, String).self) {
            let node = WorkflowNode(
                id: PostgresText.decode(row.0), type: PostgresText.decode(row.1), position: WorkflowPosition(x: row.3, y: row.4),
                label: PostgresText.decode(row.2), config: Self.json([String: JSONValue].self, row.5) ?? [:])
            found.graph.nodes[node.id] = node
            let blame = Self.json(StoredNodeBlame.self, row.6)
            found.nodeBlame[node.id] = WorkflowView.NodeBlame(
                added: blame?.added, label: blame?.label, position: blame?.position, config: blame?.config ?? [:])
        }
        let edges = try await connection.query(
            "SELECT edge_id, source, source_port, target, target_port, blame::text FROM workflow_edges WHERE workflow_id = \(id)", logger: logger)
        for try await row in edges.decode((String, String, String, String, String, String).self) {
            let edge = WorkflowEdge(
                id: PostgresText.decode(row.0), source: PostgresText.decode(row.1), sourcePort: PostgresText.decode(row.2), target: PostgresText.decode(row.3),
                targetPort: PostgresText.decode(row.4))
            found.graph.edges[edge.id] = edge
            found.edgeBlame[edge.id] = Self.json(StoredEdgeBlame.self, row.5)?.added
        }
        return found
    }

    public func versions(of id: UUID) async throws -> [WorkflowVersionView] {
        try await readModel(orIfAbsent: []) {
            let rows = try await client.query("""
                SELECT version, draft_version, content_hash, note, published_by, published_at
                FROM workflow_versions WHERE workflow_id = \(id) ORDER BY version
                """, logger: logger)
            var views: [WorkflowVersionView] = []
            for try await row in rows.decode((Int32, Int64, String, String?, String?, Date).self) {
                views.append(WorkflowVersionView(
                    version: Int(row.0), draftVersion: row.1, contentHash: row.2, note: row.3.map(PostgresText.decode), publishedBy: row.4, publishedAt: row.5))
            }
            return views
        }
    }

    public func waitForWorkflows(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        try await ReadYourWrites.wait(for: store, toReach: checkpoint, timeout: timeout)
    }
}
