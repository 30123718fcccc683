import Events
import Foundation

/// Whose runs an analytics read covers: one user's, or a tenant's (an admin's view).
public enum AnalyticsScope: Sendable, Equatable {
    case owner(String)
    case tenant(String)
}

/// How agent runs are grouped.
public enum UsageGrouping: String, Sendable, CaseIterable {
    case day, agent, model, user
}

/// How sandbox runs are grouped.
public enum SandboxGrouping: String, Sendable, CaseIterable {
    case day, user, language, status
}

/// The analytics read models, read with exact aggregates. Each answer is one JSON object per
/// group (`key` first) and a `total` over the whole range, computed from the rows themselves, not
/// summed from the groups (a percentile of a union is not a function of the groups' ones).
public protocol AnalyticsQueries: Sendable {
    /// Agent runs requested in [from, to): runs, completed, failed (timed out included),
    /// timed_out, cancelled, unfinished, model_calls, tool_calls, prompt_tokens,
    /// completion_tokens, total_tokens, cost, duration_ms_p50, duration_ms_p95 (nearest rank over
    /// the completed runs' recorded durations; null when none completed).
    func usage(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: UsageGrouping) async throws -> (groups: [JSONValue], total: JSONValue)
    /// Sandbox runs requested in [from, to): runs, by status, limits_hit by limit, cpu_ms,
    /// duration_ms_p50/p95, peak_memory_bytes_max and _p95.
    func sandbox(_ scope: AnalyticsScope, from: Date, to: Date, groupBy: SandboxGrouping) async throws -> (groups: [JSONValue], total: JSONValue)
}
