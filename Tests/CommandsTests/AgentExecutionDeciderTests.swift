import Commands
import Events
import Foundation
import Testing

@Suite struct AgentExecutionDeciderTests {
    typealias Spec = DeciderSpec<AgentExecutionDecider>
    static let execution = UUID(uuidString: "0E4A3F9C-1B2D-4C5E-8F70-112233445566")!
    static let agent = AgentDeciderTests.id
    static let now = AgentDeciderTests.now

    static var activeAgent: AgentDecider.State { AgentDecider.fold([AgentDeciderTests.created]) }

    static func request(agent: AgentDecider.State = activeAgent, input: String = "Hello", timeout: Int = 300) -> AgentExecutionDecider.Command {
        .request(RequestAgentExecution(
            executionID: execution, agentID: Self.agent, agent: agent, input: input, timeoutSeconds: timeout, maxAttempts: 2, now: now))
    }

    static let requested = AgentExecutionEvent.requested(AgentExecutionRequested(
        executionID: execution, agentID: agent, ownerID: "user-1", input: "Hello", parameters: [:], instructions: "Sort tickets.",
        settings: AgentDeciderTests.settings, plugins: [], timeoutSeconds: 300, maxAttempts: 2, requestedAt: now))

    static func started(_ attempt: Int) -> AgentExecutionEvent {
        .started(AgentExecutionStarted(executionID: execution, agentID: agent, attempt: attempt, startedAt: now))
    }

    static func start(_ attempt: Int) -> AgentExecutionDecider.Command {
        .start(StartAgentExecution(executionID: execution, attempt: attempt, now: now))
    }

    static let completed = AgentExecutionCompleted(
        executionID: execution, agentID: agent, output: "Hi", model: "offline", tokensUsed: TokenUsage(promptTokens: 1, completionTokens: 1),
        cost: 0, durationMs: 5, completedAt: now)

    static func failed(attempt: Int) -> AgentExecutionFailed {
        AgentExecutionFailed(executionID: execution, agentID: agent, error: "boom", attempt: attempt, retryable: true, failedAt: now)
    }

    static let cancel = AgentExecutionDecider.Command.cancel(CancelAgentExecution(executionID: execution, now: now))
    static let cancelled = AgentExecutionEvent.cancelled(AgentExecutionCancelled(executionID: execution, agentID: agent, cancelledAt: now))

    @Test func requestTakesTheAgentsInstructionsSettingsAndPlugins() throws {
        let state = try Spec.given().when(Self.request()).then([Self.requested])
        #expect(state.status == .pending)
    }

    @Test func aDeletedAgentCannotBeExecuted() throws {
        let deleted = AgentDecider.fold([AgentDeciderTests.created, .deleted(AgentDeleted(agentID: Self.agent, deletedAt: Self.now))])
        try Spec.given().when(Self.request(agent: deleted)).thenThrows("agent.deleted")
    }

    @Test func aMissingAgentCannotBeExecuted() throws {
        try Spec.given().when(Self.request(agent: AgentDecider.initialState)).thenThrows("agent.not_found")
    }

    @Test(arguments: ["", "  \n"])
    func rejectsAnEmptyInput(_ input: String) throws {
        try Spec.given().when(Self.request(input: input)).thenThrows("execution.input_empty")
    }

    @Test func rejectsAnInputOverTheLimit() throws {
        try Spec.given().when(Self.request(input: String(repeating: "x", count: 32_001))).thenThrows("execution.input_too_long")
    }

    @Test(arguments: [0, 3601])
    func rejectsATimeoutOutsideOneSecondToAnHour(_ timeout: Int) throws {
        try Spec.given().when(Self.request(timeout: timeout)).thenThrows("execution.timeout_range")
    }

    @Test func rejectsRequestingTheSameExecutionTwice() throws {
        try Spec.given([Self.requested]).when(Self.request()).thenThrows("execution.exists")
    }

    @Test func startsTheFirstAttempt() throws {
        let state = try Spec.given([Self.requested]).when(Self.start(1)).then([Self.started(1)])
        #expect(state.status == .running)
    }

    @Test func aStartMustBeTheNextAttempt() throws {
        try Spec.given([Self.requested]).when(Self.start(2)).thenThrows("execution.attempt_stale")
        try Spec.given([Self.requested, Self.started(1)]).when(Self.start(1)).thenThrows("execution.attempt_stale")
    }

    @Test func attemptsAreBounded() throws {
        try Spec.given([Self.requested, Self.started(1)]).when(Self.start(2)).then([Self.started(2)])
        try Spec.given([Self.requested, Self.started(1), Self.started(2)]).when(Self.start(3)).thenThrows("execution.attempts_exhausted")
    }

    @Test func completesTheCurrentAttempt() throws {
        let state = try Spec.given([Self.requested, Self.started(1)]).when(.complete(Self.completed, attempt: 1)).then([.completed(Self.completed)])
        #expect(state.status == .completed)
    }

    @Test func aSupersededAttemptCannotWrite() throws {
        let history = [Self.requested, Self.started(1), Self.started(2)]
        try Spec.given(history).when(.complete(Self.completed, attempt: 1)).thenThrows("execution.attempt_stale")
        try Spec.given(history).when(.fail(Self.failed(attempt: 1))).thenThrows("execution.attempt_stale")
        let call = AgentLLMCallRecorded(
            executionID: Self.execution, agentID: Self.agent, attempt: 1, step: 1, model: "offline", request: .null, response: .null,
            usage: TokenUsage(), cost: 0, durationMs: 1, recordedAt: Self.now)
        try Spec.given(history).when(.recordLLMCall(call)).thenThrows("execution.attempt_stale")
    }

    @Test func aPendingExecutionCannotComplete() throws {
        try Spec.given([Self.requested]).when(.complete(Self.completed, attempt: 0)).thenThrows("execution.not_running")
    }

    @Test func aPendingExecutionMayFail() throws {
        let state = try Spec.given([Self.requested]).when(.fail(Self.failed(attempt: 0))).then([.failed(Self.failed(attempt: 0))])
        #expect(state.status == .failed)
    }

    @Test(arguments: ["pending", "running"])
    func cancelsFromPendingOrRunning(_ from: String) throws {
        let history = from == "pending" ? [Self.requested] : [Self.requested, Self.started(1)]
        let state = try Spec.given(history).when(Self.cancel).then([Self.cancelled])
        #expect(state.status == .cancelled)
    }

    @Test func terminalStatesAcceptNothing() throws {
        let timedOut = AgentExecutionTimedOut(executionID: Self.execution, agentID: Self.agent, timeoutSeconds: 300, timedOutAt: Self.now)
        let endings: [AgentExecutionEvent] = [.completed(Self.completed), .failed(Self.failed(attempt: 1)), Self.cancelled, .timedOut(timedOut)]
        for ending in endings {
            let history = [Self.requested, Self.started(1), ending]
            try Spec.given(history).when(Self.cancel).thenThrows("execution.terminal")
            try Spec.given(history).when(.complete(Self.completed, attempt: 1)).thenThrows("execution.terminal")
            try Spec.given(history).when(.fail(Self.failed(attempt: 1))).thenThrows("execution.terminal")
            try Spec.given(history).when(.timeOut(timedOut, attempt: 1)).thenThrows("execution.terminal")
            try Spec.given(history).when(Self.start(2)).thenThrows("execution.terminal")
        }
    }

    @Test func aTimedOutRunReadsAsFailed() {
        let timedOut = AgentExecutionTimedOut(executionID: Self.execution, agentID: Self.agent, timeoutSeconds: 300, timedOutAt: Self.now)
        #expect(AgentExecutionDecider.fold([Self.requested, Self.started(1), .timedOut(timedOut)]).status == .failed)
    }

    @Test func commandsToAMissingExecutionAreNotFound() throws {
        try Spec.given().when(Self.cancel).thenThrows("execution.not_found")
        try Spec.given().when(Self.start(1)).thenThrows("execution.not_found")
    }
}
