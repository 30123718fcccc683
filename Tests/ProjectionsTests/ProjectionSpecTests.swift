import Events
import Foundation
import Projections
import Testing

/// Every projection, given events and checked for the writes it makes, with no I/O.
@Suite struct ProjectionSpecTests {
    static let agent = UUID(uuidString: "6F9619FF-8B86-D011-B42D-00CF4FC964FF")!
    static let execution = UUID(uuidString: "0E4A3F9C-1B2D-4C5E-8F70-112233445566")!
    static let now = Date(timeIntervalSince1970: 1_767_607_200)
    static let settings = AgentModelSettings(model: "offline", temperature: 0.7, maxTokens: 256)
    static var agentStream: String { "agent-\(agent.uuidString.lowercased())" }
    static var executionStream: String { "agentexecution-\(execution.uuidString.lowercased())" }
    static var codeStream: String { "codeexecution-\(execution.uuidString.lowercased())" }

    static func agentHistory() throws -> [RecordedEvent] {
        [
            try .recorded(
                AgentCreated(agentID: agent, ownerID: "user-1", name: "Triage", instructions: "Sort.", settings: settings, plugins: [], createdAt: now),
                stream: agentStream, version: 1),
            try .recorded(AgentRenamed(agentID: agent, name: "Sorter", renamedAt: now), stream: agentStream, version: 2),
            try .recorded(AgentDeleted(agentID: agent, deletedAt: now), stream: agentStream, version: 3),
        ]
    }

    static func runHistory() throws -> [RecordedEvent] {
        [
            try .recorded(
                AgentExecutionRequested(
                    executionID: execution, agentID: agent, ownerID: "user-1", input: "Hello", parameters: [:], instructions: "Sort.",
                    settings: settings, plugins: [], timeoutSeconds: 300, maxAttempts: 2, requestedAt: now),
                stream: executionStream, version: 1),
            try .recorded(AgentExecutionStarted(executionID: execution, agentID: agent, attempt: 1, startedAt: now), stream: executionStream, version: 2),
            try .recorded(
                AgentLLMCallRecorded(
                    executionID: execution, agentID: agent, attempt: 1, step: 1, model: "offline", request: .null, response: .null,
                    usage: TokenUsage(promptTokens: 3, completionTokens: 4), cost: 0.5, durationMs: 2, recordedAt: now),
                stream: executionStream, version: 3),
            try .recorded(
                AgentExecutionCompleted(
                    executionID: execution, agentID: agent, output: "Hi", model: "offline", tokensUsed: TokenUsage(promptTokens: 3, completionTokens: 4),
                    cost: 0.5, durationMs: 5, completedAt: now),
                stream: executionStream, version: 4),
        ]
    }

    @Test func theAgentListInsertsOnCreationThenUpdatesInPlace() throws {
        try ProjectionSpec.given(Self.agentHistory()).then(AgentListProjection(), [
            .insert("agents_by_owner", [1: .uuid(Self.agent), 2: .text("user-1"), 3: .text("Triage"), 9: .int(1)]),
            .update("agents_by_owner", [1: .uuid(Self.agent), 2: .int(2), 4: .text("Sorter")]),
            .update("agents_by_owner", [1: .uuid(Self.agent), 2: .int(3)]),
        ])
    }

    @Test func theAgentListIgnoresOtherStreamsAndParksWhatItCannotRead() throws {
        try ProjectionSpec.given(Self.runHistory()).then(AgentListProjection(), [])
        let broken = RecordedEvent(
            streamID: Self.agentStream, streamVersion: 1, checkpoint: .start, eventID: UUID(), eventType: AgentCreated.eventType,
            schemaVersion: 1, data: Data("{}".utf8), metadata: EventMetadata(), recordedAt: Self.now)
        try ProjectionSpec.given([broken]).thenParks(AgentListProjection())
    }

    @Test func theExecutionsModelFollowsARunToItsOutcome() throws {
        try ProjectionSpec.given(Self.runHistory()).then(AgentExecutionsProjection(), [
            .insert("agent_executions", [1: .uuid(Self.execution), 2: .uuid(Self.agent), 3: .text("user-1"), 4: .text("Hello"), 6: .int(1)]),
            .update("agent_executions", [1: .uuid(Self.execution), 2: .int(2), 3: .int(1)]),
            .update("agent_executions", [1: .uuid(Self.execution), 2: .int(3), 4: .int(3), 5: .int(4), 6: .double(0.5)]),
            .update("agent_executions", [1: .uuid(Self.execution), 2: .int(4), 3: .text("Hi"), 5: .int(3), 6: .int(4)]),
        ])
    }

    @Test func usageCountsRequestsCallsAndOutcomesPerAgentAndDay() throws {
        try ProjectionSpec.given(Self.runHistory()).then(AgentUsageProjection(), [
            .insert("agent_usage_daily", [1: .uuid(Self.agent), 3: .int(1)]),
            .insert("agent_usage_daily", [1: .uuid(Self.agent), 3: .int(1), 4: .int(3), 5: .int(4), 6: .double(0.5)]),
            .insert("agent_usage_daily", [1: .uuid(Self.agent), 3: .int(1)]),
        ])
    }

    @Test func theEventCountsCountEveryEventByType() throws {
        let events = try Self.agentHistory() + Self.runHistory()
        try ProjectionSpec.given(events).then(EventCountsProjection(), events.map { .insert("event_counts", [2: .text($0.eventType)]) })
    }

    @Test func theAgentSummaryKeepsADeletedAgentMarkedAndExpiring() throws {
        let spec = ProjectionSpec.given(try Self.agentHistory())
        let key = AgentSummaryProjection.key(Self.agent)
        try spec.then(AgentSummaryProjection(), keys: [
            key: ["name": "Sorter", "owner_id": "user-1", "model": "offline", "status": "deleted", "version": "3", "instructions": "Sort."],
            "owner:user-1": [Self.agent.uuidString.lowercased(): "1"],
        ])
        #expect(try spec.expiries(AgentSummaryProjection())[key] != nil)
    }

    @Test func theExecutionCacheHoldsTheOutcomeAndExpiresIt() throws {
        let spec = ProjectionSpec.given(try Self.runHistory())
        let key = ExecutionCacheProjection.key(Self.execution)
        let keys = try spec.keys(ExecutionCacheProjection())
        #expect(keys.keys.sorted() == [key])
        #expect(keys[key]?["status"] == "completed")
        #expect(keys[key]?["output"] == "Hi")
        #expect(keys[key]?["tokens_used"] == "7")
        #expect(keys[key]?["attempt"] == "1")
        #expect(keys[key]?["version"] == "4")
        #expect(try spec.expiries(ExecutionCacheProjection())[key] != nil)
    }

    @Test func theSandboxModelRecordsARunAndItsOutput() throws {
        let output = SandboxOutput(stdout: "4\n", stderr: "", stdoutBytes: 2, stderrBytes: 0)
        let events: [RecordedEvent] = [
            try .recorded(
                CodeExecutionRequested(
                    executionID: Self.execution, ownerID: "user-1", language: "python", code: "print(2+2)", limits: SandboxLimits(), maxAttempts: 2,
                    requestedAt: Self.now),
                stream: Self.codeStream, version: 1),
            try .recorded(CodeExecutionStarted(executionID: Self.execution, attempt: 1, startedAt: Self.now), stream: Self.codeStream, version: 2),
            try .recorded(
                CodeExecutionCompleted(
                    executionID: Self.execution, attempt: 1, output: output, exitCode: 0,
                    usage: SandboxUsage(durationMs: 12, cpuMs: 10, peakMemoryBytes: 1 << 20), completedAt: Self.now),
                stream: Self.codeStream, version: 3),
        ]
        try ProjectionSpec.given(events).then(CodeExecutionsProjection(), [
            .insert("code_executions", [1: .uuid(Self.execution), 2: .text("user-1"), 3: .text("python"), 4: .int(5), 5: .int(1)]),
            .update("code_executions", [1: .uuid(Self.execution), 2: .int(2), 3: .int(1)]),
            .update("code_executions", [1: .uuid(Self.execution), 2: .int(3), 3: .text("completed"), 4: .text("4\n"), 9: .int(0), 12: .int(12)]),
        ])
    }
}
