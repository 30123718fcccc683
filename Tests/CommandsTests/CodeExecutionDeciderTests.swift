import Commands
import Events
import Foundation
import Testing

@Suite struct CodeExecutionDeciderTests {
    typealias Spec = DeciderSpec<CodeExecutionDecider>
    static let execution = UUID(uuidString: "7D444840-9DC0-11D1-B245-5FFDCE74FAD2")!
    static let now = Date(timeIntervalSince1970: 1_767_607_200)
    static let usage = SandboxUsage(durationMs: 21, cpuMs: 19, peakMemoryBytes: 9_711_616)
    static let output = SandboxOutput(stdout: "1\n", stderr: "", stdoutBytes: 2, stderrBytes: 0)

    static func request(language: String = "python", code: String = "print(1)", timeout: Int = 5) -> CodeExecutionDecider.Command {
        .request(RequestCodeExecution(
            executionID: execution, ownerID: "user-1", language: language, code: code, limits: SandboxLimits(timeoutSeconds: timeout),
            now: now))
    }

    static let requested = CodeExecutionEvent.requested(CodeExecutionRequested(
        executionID: execution, ownerID: "user-1", language: "python", code: "print(1)", limits: SandboxLimits(), maxAttempts: 2,
        requestedAt: now))

    static func started(_ attempt: Int) -> CodeExecutionEvent {
        .started(CodeExecutionStarted(executionID: execution, attempt: attempt, startedAt: now))
    }

    static func completed(_ attempt: Int) -> CodeExecutionEvent {
        .completed(CodeExecutionCompleted(executionID: execution, attempt: attempt, output: output, exitCode: 0, usage: usage, completedAt: now))
    }

    @Test func aPythonRequestIsAcceptedWithItsLimits() throws {
        let state = try Spec.given().when(Self.request()).then([Self.requested])
        #expect(state.status == .pending)
    }

    @Test func badRequestsAreRefusedWithTheirOwnCodes() throws {
        try Spec.given().when(Self.request(language: "ruby")).thenThrows("sandbox.language_unsupported")
        try Spec.given().when(Self.request(code: " \n")).thenThrows("sandbox.code_empty")
        try Spec.given().when(Self.request(code: String(repeating: "x", count: (64 << 10) + 1))).thenThrows("sandbox.code_too_large")
        try Spec.given().when(Self.request(timeout: 0)).thenThrows("sandbox.timeout_range")
        try Spec.given().when(Self.request(timeout: 31)).thenThrows("sandbox.timeout_range")
        try Spec.given([Self.requested]).when(Self.request()).thenThrows("sandbox.execution_exists")
        do {
            _ = try CodeExecutionDecider.decide(Self.request(code: String(repeating: "x", count: 70_000)), state: CodeExecutionDecider.initialState)
            Issue.record("large code was accepted")
        } catch let error as DomainError {
            #expect(error.kind == .tooLarge)
        }
    }

    @Test func onlyTheCurrentAttemptMayFinishAndOnlyOnce() throws {
        try Spec.given([Self.requested]).when(.finish(Self.completed(1), attempt: 1)).thenThrows("sandbox.not_running")
        try Spec.given([Self.requested]).when(.start(executionID: Self.execution, attempt: 2, now: Self.now)).thenThrows("sandbox.attempt_stale")
        try Spec.given([Self.requested, Self.started(1)]).when(.start(executionID: Self.execution, attempt: 2, now: Self.now))
            .then([Self.started(2)])
        try Spec.given([Self.requested, Self.started(1), Self.started(2)]).when(.finish(Self.completed(1), attempt: 1))
            .thenThrows("sandbox.attempt_stale")
        try Spec.given([Self.requested, Self.started(1), Self.started(2)])
            .when(.start(executionID: Self.execution, attempt: 3, now: Self.now)).thenThrows("sandbox.attempts_exhausted")
        let state = try Spec.given([Self.requested, Self.started(1)]).when(.finish(Self.completed(1), attempt: 1)).then([Self.completed(1)])
        #expect(state.status == .completed)
        try Spec.given([Self.requested, Self.started(1), Self.completed(1)]).when(.finish(Self.completed(1), attempt: 1))
            .thenThrows("sandbox.execution_terminal")
        try Spec.given([Self.requested, Self.started(1)]).when(.finish(Self.started(2), attempt: 1)).thenThrows("sandbox.not_an_outcome")
    }

    @Test func resultsBecomeTheRightOutcome() {
        func event(_ ending: SandboxResult.Ending, limit: String? = nil, stderr: String = "") -> CodeExecutionEvent {
            SandboxResult(ending: ending, limit: limit, output: SandboxOutput(stdout: "", stderr: stderr, stdoutBytes: 0, stderrBytes: 0), usage: Self.usage)
                .event(executionID: Self.execution, attempt: 1, timeoutSeconds: 5, now: Self.now)
        }
        if case .completed = event(.exited(0)) {} else { Issue.record("exit 0 is not completed") }
        if case .failed(let failed) = event(.exited(1), stderr: "Traceback...\nValueError: boom\n") {
            #expect(failed.error == "ValueError: boom" && failed.exitCode == 1)
        } else { Issue.record("exit 1 is not failed") }
        if case .failed(let failed) = event(.signalled(11)) { #expect(failed.signal == 11) } else { Issue.record("a signal is not failed") }
        if case .timedOut(let timedOut) = event(.timedOut) { #expect(timedOut.timeoutSeconds == 5) } else { Issue.record("not timed out") }
        if case .limitExceeded(let exceeded) = event(.exited(1), limit: "memory") { #expect(exceeded.limit == "memory") } else {
            Issue.record("a limit is not limit_exceeded")
        }
        if case .limitExceeded(let exceeded) = event(.signalled(24), limit: "cpu") { #expect(exceeded.signal == 24) } else {
            Issue.record("SIGXCPU is not limit_exceeded")
        }
        // The wall limit wins over a limit met on the way.
        if case .timedOut = event(.timedOut, limit: "memory") {} else { Issue.record("timed out with a limit is not timed out") }
    }
}
