import Commands
import Events
import Foundation

/// Workflows as rows (Postgres): `workflows` (one row each, with its stream version), their draft's
/// `workflow_nodes` and `workflow_edges`, and the frozen `workflow_versions`. Each node, field and
/// edge carries its blame: who last changed it, at which version, when (from the event's
/// metadata). `GET /workflows/{id}` and the list read this; commands and time travel read the
/// stream.
public struct WorkflowsProjection: PostgresProjection {
    public let name = "workflows"
    /// An edit is two to four statements (the row, its blame, the workflow's version), each a
    /// round trip: 16 events keep a transaction to a few dozen. With 100, a loaded machine kept
    /// transactions open for 2 to 6 s, holding back every reader of the log on the server.
    public var batchSize: Int? { 16 }
    let registry: EventRegistry

    public init(registry: EventRegistry = WorkflowEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [
            ReadModelTable(name: "workflows", ddl: """
                CREATE TABLE IF NOT EXISTS {workflows} (
                    workflow_id   uuid PRIMARY KEY,
                    owner_id      text NOT NULL,
                    tenant_id     text,
                    name          text NOT NULL,
                    description   text NOT NULL,
                    version       bigint NOT NULL,
                    draft_version bigint NOT NULL,
                    published     integer NOT NULL DEFAULT 0,
                    deployed      integer,
                    deleted       boolean NOT NULL DEFAULT false,
                    blame         jsonb NOT NULL DEFAULT '{}'::jsonb,
                    created_at    timestamptz NOT NULL,
                    updated_at    timestamptz NOT NULL
                );
                CREATE INDEX IF NOT EXISTS {workflows}_owner_idx ON {workflows} (owner_id, created_at, workflow_id)
                """),
            ReadModelTable(name: "workflow_nodes", ddl: """
                CREATE TABLE IF NOT EXISTS {workflow_nodes} (
                    workflow_id uuid NOT NULL,
                    node_id     text NOT NULL,
                    type        text NOT NULL,
                    label       text NOT NULL,
                    x           double precision NOT NULL,
                    y           double precision NOT NULL,
                    config      jsonb NOT NULL,
                    blame       jsonb NOT NULL,
                    PRIMARY KEY (workflow_id, node_id)
                )
                """),
            ReadModelTable(name: "workflow_edges", ddl: """
                CREATE TABLE IF NOT EXISTS {workflow_edges} (
                    workflow_id uuid NOT NULL,
                    edge_id     text NOT NULL,
                    source      text NOT NULL,
                    source_port text NOT NULL,
                    target      text NOT NULL,
                    target_port text NOT NULL,
                    blame       jsonb NOT NULL,
                    PRIMARY KEY (workflow_id, edge_id)
                )
                """),
            ReadModelTable(name: "workflow_versions", ddl: """
                CREATE TABLE IF NOT EXISTS {workflow_versions} (
                    workflow_id   uuid NOT NULL,
                    version       integer NOT NULL,
                    draft_version bigint NOT NULL,
                    content_hash  text NOT NULL,
                    graph         jsonb NOT NULL,
                    note          text,
                    published_by  text,
                    published_at  timestamptz NOT NULL,
                    PRIMARY KEY (workflow_id, version)
                )
                """),
        ]
    }

    static let prefix = "\(WorkflowDecider.category)-"

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard event.streamID.hasPrefix(Self.prefix), registry.registrations[event.eventType] != nil else { return [] }
        guard let decoded = WorkflowEvent(payload: try registry.decode(event)) else { return [] }
        let blame = SQLValue.json(try EventCoding.encode(WorkflowBlame(event)))
        let version = SQLValue.int(event.streamVersion)
        var statements: [SQLStatement] = []
        let id: UUID
        switch decoded {
        case .created(let created):
            return [SQLStatement("""
                INSERT INTO {workflows} (workflow_id, owner_id, tenant_id, name, description, version, draft_version, blame, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $6, jsonb_build_object('name', $7::jsonb, 'description', $7::jsonb), $8, $8)
                ON CONFLICT (workflow_id) DO NOTHING
                """, [.uuid(created.workflowID), .text(created.ownerID), created.tenantID.map(SQLValue.text) ?? .null, .text(created.name),
                      .text(created.description), version, blame, .timestamp(created.createdAt)])]
        case .edited(let edit):
            id = edit.workflowID
            statements = Self.change(edit.change, workflow: .uuid(id), blame: blame)
            statements.append(SQLStatement(
                "UPDATE {workflows} SET draft_version = $2 WHERE workflow_id = $1", [.uuid(id), version]))
        case .operationRejected(let rejected):
            id = rejected.workflowID
        case .versionPublished(let published):
            id = published.workflowID
            statements = [
                SQLStatement("""
                    INSERT INTO {workflow_versions} (workflow_id, version, draft_version, content_hash, graph, note, published_by, published_at)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) ON CONFLICT (workflow_id, version) DO NOTHING
                    """, [.uuid(id), .int(Int64(published.version)), .int(published.draftVersion), .text(published.contentHash),
                          .json(try EventCoding.encode(published.graph)), published.note.map(SQLValue.text) ?? .null,
                          event.metadata.userID.map(SQLValue.text) ?? .null, .timestamp(published.publishedAt)]),
                SQLStatement("UPDATE {workflows} SET published = $2 WHERE workflow_id = $1", [.uuid(id), .int(Int64(published.version))]),
            ]
        case .draftRestored(let restored):
            id = restored.workflowID
            let graph = SQLValue.json(try EventCoding.encode(restored.graph))
            statements = [
                SQLStatement("DELETE FROM {workflow_nodes} WHERE workflow_id = $1", [.uuid(id)]),
                SQLStatement("DELETE FROM {workflow_edges} WHERE workflow_id = $1", [.uuid(id)]),
                // Set-based from the restored graph's JSON: one statement per table, whatever its size.
                SQLStatement("""
                    INSERT INTO {workflow_nodes} (workflow_id, node_id, type, label, x, y, config, blame)
                    SELECT $1, n.key, n.value->>'type', n.value->>'label', (n.value->'position'->>'x')::double precision,
                           (n.value->'position'->>'y')::double precision, n.value->'config', jsonb_build_object('added', $3::jsonb, 'config', '{}'::jsonb)
                    FROM jsonb_each($2::jsonb->'nodes') AS n
                    """, [.uuid(id), graph, blame]),
                SQLStatement("""
                    INSERT INTO {workflow_edges} (workflow_id, edge_id, source, source_port, target, target_port, blame)
                    SELECT $1, e.key, e.value->>'source', e.value->>'source_port', e.value->>'target', e.value->>'target_port',
                           jsonb_build_object('added', $3::jsonb)
                    FROM jsonb_each($2::jsonb->'edges') AS e
                    """, [.uuid(id), graph, blame]),
                SQLStatement("""
                    UPDATE {workflows} SET name = $2::jsonb->>'name', description = $2::jsonb->>'description', draft_version = $3,
                           blame = jsonb_build_object('name', $4::jsonb, 'description', $4::jsonb)
                    WHERE workflow_id = $1
                    """, [.uuid(id), graph, version, blame]),
            ]
        case .deployed(let deployed):
            id = deployed.workflowID
            statements = [SQLStatement("UPDATE {workflows} SET deployed = $2 WHERE workflow_id = $1", [.uuid(id), .int(Int64(deployed.version))])]
        case .deleted(let deleted):
            id = deleted.workflowID
            statements = [
                SQLStatement("UPDATE {workflows} SET deleted = true WHERE workflow_id = $1", [.uuid(id)]),
                SQLStatement("DELETE FROM {workflow_nodes} WHERE workflow_id = $1", [.uuid(id)]),
                SQLStatement("DELETE FROM {workflow_edges} WHERE workflow_id = $1", [.uuid(id)]),
            ]
        }
        // Every event of the stream moves the row's version (the ETag a client bases its edits on).
        statements.append(SQLStatement(
            "UPDATE {workflows} SET version = $2, updated_at = $3 WHERE workflow_id = $1", [.uuid(id), version, .timestamp(event.recordedAt)]))
        return statements
    }

    static func change(_ change: WorkflowChange, workflow id: SQLValue, blame: SQLValue) -> [SQLStatement] {
        switch change {
        case .renamed(let name):
            return [SQLStatement(
                "UPDATE {workflows} SET name = $2, blame = jsonb_set(blame, '{name}', $3::jsonb) WHERE workflow_id = $1", [id, .text(name), blame])]
        case .described(let description):
            return [SQLStatement(
                "UPDATE {workflows} SET description = $2, blame = jsonb_set(blame, '{description}', $3::jsonb) WHERE workflow_id = $1",
                [id, .text(description), blame])]
        case .nodeAdded(let node):
            return [SQLStatement("""
                INSERT INTO {workflow_nodes} (workflow_id, node_id, type, label, x, y, config, blame)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, jsonb_build_object('added', $8::jsonb, 'config', '{}'::jsonb))
                ON CONFLICT (workflow_id, node_id) DO NOTHING
                """, [id, .text(node.id), .text(node.type), .text(node.label), .double(node.position.x), .double(node.position.y),
                      .json((try? EventCoding.encode(node.config)) ?? Data("{}".utf8)), blame])]
        case .nodeMoved(let node, let position):
            return [SQLStatement(
                "UPDATE {workflow_nodes} SET x = $3, y = $4, blame = jsonb_set(blame, '{position}', $5::jsonb) WHERE workflow_id = $1 AND node_id = $2",
                [id, .text(node), .double(position.x), .double(position.y), blame])]
        case .nodeRelabeled(let node, let label):
            return [SQLStatement(
                "UPDATE {workflow_nodes} SET label = $3, blame = jsonb_set(blame, '{label}', $4::jsonb) WHERE workflow_id = $1 AND node_id = $2",
                [id, .text(node), .text(label), blame])]
        case .nodeConfigChanged(let node, let field, let value?):
            return [SQLStatement("""
                UPDATE {workflow_nodes} SET config = config || jsonb_build_object($3::text, $4::jsonb),
                       blame = jsonb_set(blame, ARRAY['config', $3::text], $5::jsonb)
                WHERE workflow_id = $1 AND node_id = $2
                """, [id, .text(node), .text(field), .json((try? EventCoding.encode(value)) ?? Data("null".utf8)), blame])]
        case .nodeConfigChanged(let node, let field, nil):
            return [SQLStatement(
                "UPDATE {workflow_nodes} SET config = config - $3::text, blame = blame #- ARRAY['config', $3::text] WHERE workflow_id = $1 AND node_id = $2",
                [id, .text(node), .text(field)])]
        case .nodeRemoved(let node, _):
            // The decider removes exactly the edges touching the node with it.
            return [
                SQLStatement("DELETE FROM {workflow_nodes} WHERE workflow_id = $1 AND node_id = $2", [id, .text(node)]),
                SQLStatement("DELETE FROM {workflow_edges} WHERE workflow_id = $1 AND (source = $2 OR target = $2)", [id, .text(node)]),
            ]
        case .edgeAdded(let edge):
            return [SQLStatement("""
                INSERT INTO {workflow_edges} (workflow_id, edge_id, source, source_port, target, target_port, blame)
                VALUES ($1, $2, $3, $4, $5, $6, jsonb_build_object('added', $7::jsonb)) ON CONFLICT (workflow_id, edge_id) DO NOTHING
                """, [id, .text(edge.id), .text(edge.source), .text(edge.sourcePort), .text(edge.target), .text(edge.targetPort), blame])]
        case .edgeRemoved(let edge):
            return [SQLStatement("DELETE FROM {workflow_edges} WHERE workflow_id = $1 AND edge_id = $2", [id, .text(edge)])]
        }
    }
}

/// Who last changed a part of a workflow: the event's user, its stream version and its time.
public struct WorkflowBlame: Codable, Sendable, Hashable {
    public var userID: String?
    public var version: Int64
    public var at: Date

    public init(userID: String?, version: Int64, at: Date) {
        self.userID = userID
        self.version = version
        self.at = at
    }

    init(_ event: RecordedEvent) {
        self.init(userID: event.metadata.userID, version: event.streamVersion, at: event.recordedAt)
    }

    enum CodingKeys: String, CodingKey {
        case userID = "userId"
        case version, at
    }
}

/// A workflow's draft as the read model holds it, with blame.
public struct WorkflowView: Sendable, Equatable {
    public struct NodeBlame: Sendable, Equatable {
        public var added: WorkflowBlame?
        public var label: WorkflowBlame?
        public var position: WorkflowBlame?
        public var config: [String: WorkflowBlame]

        public init(added: WorkflowBlame?, label: WorkflowBlame?, position: WorkflowBlame?, config: [String: WorkflowBlame]) {
            self.added = added
            self.label = label
            self.position = position
            self.config = config
        }
    }

    public var id: UUID
    public var ownerID: String
    public var version: Int64
    public var draftVersion: Int64
    public var published: Int
    public var deployed: Int?
    public var graph: WorkflowGraph
    public var blame: [String: WorkflowBlame]
    public var nodeBlame: [String: NodeBlame]
    public var edgeBlame: [String: WorkflowBlame]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, ownerID: String, version: Int64, draftVersion: Int64, published: Int, deployed: Int?, graph: WorkflowGraph, blame: [String: WorkflowBlame],
        nodeBlame: [String: NodeBlame], edgeBlame: [String: WorkflowBlame], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.version = version
        self.draftVersion = draftVersion
        self.published = published
        self.deployed = deployed
        self.graph = graph
        self.blame = blame
        self.nodeBlame = nodeBlame
        self.edgeBlame = edgeBlame
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A workflow in the list.
public struct WorkflowSummary: Sendable, Equatable {
    public var id: UUID
    public var ownerID: String
    public var name: String
    public var description: String
    public var version: Int64
    public var published: Int
    public var deployed: Int?
    public var nodes: Int
    public var edges: Int
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, ownerID: String, name: String, description: String, version: Int64, published: Int, deployed: Int?, nodes: Int, edges: Int, createdAt: Date,
        updatedAt: Date
    ) {
        self.id = id
        self.ownerID = ownerID
        self.name = name
        self.description = description
        self.version = version
        self.published = published
        self.deployed = deployed
        self.nodes = nodes
        self.edges = edges
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A published version as the read model holds it.
public struct WorkflowVersionView: Sendable, Equatable {
    public var version: Int
    public var draftVersion: Int64
    public var contentHash: String
    public var note: String?
    public var publishedBy: String?
    public var publishedAt: Date

    public init(version: Int, draftVersion: Int64, contentHash: String, note: String?, publishedBy: String?, publishedAt: Date) {
        self.version = version
        self.draftVersion = draftVersion
        self.contentHash = contentHash
        self.note = note
        self.publishedBy = publishedBy
        self.publishedAt = publishedAt
    }
}

/// The read side of the Workflows module.
public protocol WorkflowQueries: Sendable {
    /// A page of workflows (not deleted), oldest first; `owner` nil: every owner's.
    func workflows(owner: String?, page: Int, pageSize: Int) async throws -> Page<WorkflowSummary>
    /// A workflow's draft with blame; nil when absent or deleted.
    func workflow(_ id: UUID) async throws -> WorkflowView?
    /// Its published versions, oldest first.
    func versions(of id: UUID) async throws -> [WorkflowVersionView]
    /// Waits (bounded) until the read model has passed `checkpoint`; false on timeout.
    func waitForWorkflows(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool
}
