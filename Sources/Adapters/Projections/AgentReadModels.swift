import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `AgentQueries` over the Agents read models: `agents_by_owner`, `agent_executions` and
/// `agent_usage_daily` in Postgres (read through their views, so a rebuild's swap is invisible),
/// and the `execution:{id}` cache in Redis, read first for single executions. If Redis is down,
/// reads fall back to Postgres rather than fail.
public struct AgentReadModels: AgentQueries {
    let client: PostgresClient
    let redis: RedisClient
    let agentsStore: PostgresProjectionStore<AgentListProjection>
    let executionsStore: PostgresProjectionStore<AgentExecutionsProjection>
    let cache: RedisProjectionStore<ExecutionCacheProjection>
    let logger: Logger

    public init(
        client: PostgresClient, redis: RedisClient, agents: PostgresProjectionStore<AgentListProjection>,
        executions: PostgresProjectionStore<AgentExecutionsProjection>, cache: RedisProjectionStore<ExecutionCacheProjection>,
        logger: Logger
    ) {
        self.client = client
        self.redis = redis
        agentsStore = agents
        executionsStore = executions
        self.cache = cache
        self.logger = logger
    }

    typealias AgentRow = (UUID, String, String, String, String, Double, Int64, String, String, Int64, Date, Date, String?)

    static func agent(_ row: AgentRow) -> AgentView {
        let plugins = (try? JSONDecoder().decode([String].self, from: Data(row.7.utf8))) ?? []
        return AgentView(
            id: row.0, ownerID: row.1, name: PostgresText.decode(row.2), instructions: PostgresText.decode(row.3), model: PostgresText.decode(row.4), temperature: row.5, maxTokens: Int(row.6),
            plugins: plugins, status: row.8, version: row.9, createdAt: row.10, updatedAt: row.11,
            persona: row.12.flatMap { try? EventCoding.decode(AgentPersona.self, from: PostgresText.decodeJSON(Data($0.utf8))) })
    }

    public func agents(owner: String?, page: Int, pageSize: Int) async throws -> Page<AgentView> {
        try await readModel(orIfAbsent: Page(items: [], page: page, pageSize: pageSize, totalCount: 0)) {
            let offset = (page - 1) * pageSize
            var items: [AgentView] = []
            var total = 0
            let rows = try await client.query("""
                SELECT agent_id, owner_id, name, instructions, model, temperature, max_tokens, plugins::text, status, version, created_at, updated_at, persona::text
                FROM agents_by_owner WHERE status <> 'deleted' AND (\(owner)::text IS NULL OR owner_id = \(owner))
                ORDER BY created_at DESC, agent_id LIMIT \(pageSize) OFFSET \(offset)
                """, logger: logger)
            for try await row in rows.decode(AgentRow.self) { items.append(Self.agent(row)) }
            let counted = try await client.query(
                "SELECT count(*) FROM agents_by_owner WHERE status <> 'deleted' AND (\(owner)::text IS NULL OR owner_id = \(owner))", logger: logger)
            for try await count in counted.decode(Int64.self) { total = Int(count) }
            return Page(items: items, page: page, pageSize: pageSize, totalCount: total)
        }
    }

    public func agent(_ id: UUID) async throws -> AgentView? {
        try await readModel(orIfAbsent: nil) {
            let rows = try await client.query("""
                SELECT agent_id, owner_id, name, instructions, model, temperature, max_tokens, plugins::text, status, version, created_at, updated_at, persona::text
                FROM agents_by_owner WHERE agent_id = \(id)
                """, logger: logger)
            for try await row in rows.decode(AgentRow.self) { return Self.agent(row) }
            return nil
        }
    }

    typealias ExecutionRow = (UUID, UUID, String, String, String?, String?, String, Int64, Int64, Double, Int64?, Date, Date?, Int64, UUID?, Int32?)

    static func execution(_ row: ExecutionRow) -> ExecutionView {
        var view = ExecutionView(
            id: row.0, agentID: row.1, ownerID: row.2, status: row.3, output: row.4.map(PostgresText.decode), error: row.5.map(PostgresText.decode), model: PostgresText.decode(row.6),
            promptTokens: Int(row.7), completionTokens: Int(row.8), cost: row.9, durationMs: row.10.map(Int.init), requestedAt: row.11,
            finishedAt: row.12, version: row.13)
        view.forkedFrom = row.14
        view.fromCall = row.15.map(Int.init)
        return view
    }

    static let executionColumns = """
        execution_id, agent_id, owner_id, status, output, error, model, prompt_tokens, completion_tokens, cost, duration_ms,
        requested_at, finished_at, version, forked_from, from_call
        """

    /// Runs not ended and requested before `date`, oldest first: the watchdog's candidates.
    public func unfinishedExecutions(requestedBefore date: Date, limit: Int) async throws -> [UUID] {
        try await unfinishedRuns(client, in: "agent_executions", requestedBefore: date, limit: limit, logger: logger)
    }

    public func executions(agent: UUID, status: String?, page: Int, pageSize: Int) async throws -> Page<ExecutionView> {
        try await readModel(orIfAbsent: Page(items: [], page: page, pageSize: pageSize, totalCount: 0)) {
            let offset = (page - 1) * pageSize
            var items: [ExecutionView] = []
            var total = 0
            let rows = try await client.query(PostgresQuery(unsafeSQL: """
                SELECT \(Self.executionColumns) FROM agent_executions
                WHERE agent_id = $1 AND ($2::text IS NULL OR status = $2)
                ORDER BY requested_at DESC, execution_id LIMIT $3 OFFSET $4
                """, binds: try Self.binds(agent, status, pageSize, offset)), logger: logger)
            for try await row in rows.decode(ExecutionRow.self) { items.append(Self.execution(row)) }
            let counted = try await client.query(
                "SELECT count(*) FROM agent_executions WHERE agent_id = \(agent) AND (\(status)::text IS NULL OR status = \(status))", logger: logger)
            for try await count in counted.decode(Int64.self) { total = Int(count) }
            return Page(items: items, page: page, pageSize: pageSize, totalCount: total)
        }
    }

    static func binds(_ agent: UUID, _ status: String?, _ limit: Int, _ offset: Int) throws -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(agent)
        binds.append(status)
        binds.append(limit)
        binds.append(offset)
        return binds
    }

    public func execution(_ id: UUID) async throws -> ExecutionView? {
        if let cached = try? await cachedExecution(id) { return cached }
        return try await readModel(orIfAbsent: nil) {
            let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT \(Self.executionColumns) FROM agent_executions WHERE execution_id = $1", binds: {
                var binds = PostgresBindings()
                binds.append(id)
                return binds
            }()), logger: logger)
            for try await row in rows.decode(ExecutionRow.self) { return Self.execution(row) }
            return nil
        }
    }

    /// The Redis hash, if it holds the execution (it may have expired, or Redis may be behind).
    func cachedExecution(_ id: UUID) async throws -> ExecutionView? {
        let reply = try await redis.command("HGETALL", cache.prefix + ExecutionCacheProjection.key(id))
        guard case .array(let values) = reply, !values.isEmpty else { return nil }
        var fields: [String: String] = [:]
        var index = 0
        while index + 1 < values.count {
            if let key = values[index].string { fields[key] = values[index + 1].string }
            index += 2
        }
        guard let status = fields["status"], let agent = fields["agent_id"].flatMap(UUID.init(uuidString:)), let owner = fields["owner_id"]
        else { return nil }
        let requested = fields["requested_at"].flatMap(Timestamp.parse)
        let started = fields["started_at"].flatMap(Timestamp.parse)
        let finished = fields["finished_at"].flatMap(Timestamp.parse)
        let duration = fields["duration_ms"].flatMap(Int.init)
            ?? finished.map { Int(($0.timeIntervalSince(started ?? requested ?? $0) * 1000).rounded()) }
        var view = ExecutionView(
            id: id, agentID: agent, ownerID: owner, status: status, output: fields["output"], error: fields["error"], model: fields["model"],
            promptTokens: fields["prompt_tokens"].flatMap(Int.init) ?? 0, completionTokens: fields["completion_tokens"].flatMap(Int.init) ?? 0,
            cost: fields["cost"].flatMap(Double.init) ?? 0, durationMs: duration, requestedAt: requested, finishedAt: finished,
            version: fields["version"].flatMap(Int64.init) ?? 0)
        view.forkedFrom = fields["forked_from"].flatMap(UUID.init(uuidString:))
        view.fromCall = fields["from_call"].flatMap(Int.init)
        return view
    }

    public func usage(agent: UUID, days: Int) async throws -> [AgentUsageDay] {
        try await readModel(orIfAbsent: []) {
            var result: [AgentUsageDay] = []
            let rows = try await client.query("""
                SELECT day::text, model_calls, executions, completed, failed, prompt_tokens, completion_tokens, cost
                FROM agent_usage_daily WHERE agent_id = \(agent) AND day > (now() AT TIME ZONE 'UTC')::date - \(Int32(days))::integer
                ORDER BY day DESC
                """, logger: logger)
            for try await (day, calls, executions, completed, failed, prompt, completion, cost)
                in rows.decode((String, Int64, Int64, Int64, Int64, Int64, Int64, Double).self)
            {
                result.append(AgentUsageDay(
                    day: day, modelCalls: Int(calls), executions: Int(executions), completed: Int(completed), failed: Int(failed),
                    promptTokens: Int(prompt), completionTokens: Int(completion), cost: cost))
            }
            return result
        }
    }

    public func typicalDurationMs(agent: UUID) async throws -> Int? {
        try await readModel(orIfAbsent: nil) {
            let rows = try await client.query("""
                SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM (
                    SELECT duration_ms FROM agent_executions WHERE agent_id = \(agent) AND status = 'completed'
                    ORDER BY requested_at DESC LIMIT 20) recent
                """, logger: logger)
            for try await value in rows.decode(Int64?.self) { return value.map(Int.init) }
            return nil
        }
    }

    public func waitForAgents(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        try await ReadYourWrites.wait(for: agentsStore, toReach: checkpoint, timeout: timeout)
    }

    public func waitForExecutions(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        async let postgres = ReadYourWrites.wait(for: executionsStore, toReach: checkpoint, timeout: timeout)
        let redis = (try? await ReadYourWrites.wait(for: cache, toReach: checkpoint, timeout: timeout)) ?? false
        return try await postgres && redis
    }
}
