extension DomainError.Code {
    // The Workflows module's error codes (refused commands; no event is written).
    public static let workflowDeleted: Self = "workflow.deleted"
    public static let workflowDraftStale: Self = "workflow.draft_stale"
    public static let workflowExists: Self = "workflow.exists"
    public static let workflowHashMismatch: Self = "workflow.hash_mismatch"
    public static let workflowInvalid: Self = "workflow.invalid"
    public static let workflowNotFound: Self = "workflow.not_found"
    public static let workflowVersionNotFound: Self = "workflow.version_not_found"
}

/// Why an operation was rejected: the `reason` of its ack and of `WorkflowOperationRejected`.
/// These depend on the graph the operation met, so they are recorded as events (a retry gets the
/// same answer); malformed operations are refused as `workflow.invalid` and record nothing.
public enum WorkflowRejection: String, Sendable, CaseIterable {
    /// A node (or edge) the operation targets was removed after the operation's base version.
    case targetDeleted = "target_deleted"
    /// An edge endpoint is missing (removed since the base: `conflictVersion` names the removal).
    case danglingEndpoint = "dangling_endpoint"
    case nodeNotFound = "node_not_found"
    case edgeNotFound = "edge_not_found"
    case nodeExists = "node_exists"
    case edgeExists = "edge_exists"
    /// Node and edge ids are never reused in a workflow, so an answer about one never changes.
    case idRetired = "id_retired"
    case duplicateEdge = "duplicate_edge"
    case cycle
    case graphTooLarge = "graph_too_large"
    case configTooLarge = "config_too_large"
    /// The draft was restored to a published version after the operation's base.
    case draftRestored = "draft_restored"
    /// The client's base version is ahead of the workflow: it never saw that version.
    case unknownBase = "unknown_base"
}
