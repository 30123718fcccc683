import Commands
import Events
import Foundation
import Logging
import Workers
import Synchronization
import Testing

/// Issue 17, finding 5: an outcome the database refuses must end the run with a failure that says
/// why, and never make the work run again. The store here refuses events of the given types, as
/// Postgres refused `\u0000` in jsonb.
@Suite struct UnstorableOutcomeTests {
    struct RefusingStore: EventStore {
        let inner = InMemoryEventStore()
        let refused: Set<String>

        func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
            if events.contains(where: { refused.contains($0.eventType) }) { throw EventStoreError.refused("unsupported Unicode escape sequence") }
            return try await inner.append(to: streamID, expected: expected, events: events)
        }
        func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) async throws -> [RecordedEvent] {
            try await inner.readStream(streamID, from: version, direction: direction, limit: limit)
        }
        func readAll(after checkpoint: Checkpoint, limit: Int) async throws -> [RecordedEvent] { try await inner.readAll(after: checkpoint, limit: limit) }
        func priorAppend(firstEventID: UUID) async throws -> AppendResult? { try await inner.priorAppend(firstEventID: firstEventID) }
        func streamVersion(_ streamID: String) async throws -> Int64 { try await inner.streamVersion(streamID) }
    }

    /// Counts runs; prints a NUL.
    final class CountingSandbox: SandboxRunner {
        let runs = Mutex(0)
        func run(_ code: String, limits: SandboxLimits) async throws -> SandboxResult {
            runs.withLock { $0 += 1 }
            return SandboxResult(
                ending: .exited(0), limit: nil, output: SandboxOutput(stdout: "a\0b\n", stderr: "", stdoutBytes: 4, stderrBytes: 0),
                usage: SandboxUsage(durationMs: 1, cpuMs: 1, peakMemoryBytes: 1))
        }
        func health() async -> SandboxHealth { SandboxHealth(warm: 0, warmTarget: 0, running: 0, concurrency: 1, runs: 0, problem: nil) }
    }

    @Test func aSandboxOutcomeTheStoreRefusesEndsTheRunFailedAndIsNotRunAgain() async throws {
        let store = RefusingStore(refused: ["CodeExecutionCompleted"])
        let id = UUID()
        let stream = CodeExecutionDecider.streamID(id)
        _ = try await CommandHandler<CodeExecutionDecider>(store: store).handle(
            .request(RequestCodeExecution(executionID: id, ownerID: "u", language: "python", code: "print('a\\x00b')", limits: .init(), now: Date())),
            on: stream, context: CommandContext(userID: "u", tenantID: "t"))
        let requested = try await store.readStream(stream.description, from: 1, direction: .forward, limit: 1)[0]
        let body = try IntegrationMessage.body(
            eventID: requested.eventID, eventType: requested.eventType, contractVersion: 1, streamID: requested.streamID,
            streamVersion: requested.streamVersion, occurredAt: requested.recordedAt, correlationID: "c", causationID: "c", tenantID: "t",
            rawData: requested.data)
        let sandbox = CountingSandbox()
        let worker = CodeExecutionWorker(store: store, sandbox: sandbox, logger: Logger(label: "test"))
        // Delivered twice, as a broker would after a crash: the run still ends once, and runs once.
        for attempt in 1...2 {
            try await worker.handle(WorkItem(messageID: requested.eventID.uuidString, type: requested.eventType, body: body, attempt: attempt, receipt: 1))
        }
        let events = try await store.readStream(stream.description, from: 1, direction: .forward, limit: 10)
        #expect(events.map(\.eventType) == ["CodeExecutionRequested", "CodeExecutionStarted", "CodeExecutionFailed"])
        guard case .failed(let failed) = try CodeExecutionEvent.registry.decode(events[2], as: CodeExecutionEvent.self) else { return }
        #expect(failed.error.hasPrefix("the run's outcome could not be stored: "))
        #expect(sandbox.runs.withLock { $0 } == 1)
    }

    @Test func anAgentAnswerTheStoreRefusesEndsTheRunFailed() async throws {
        let fixture = AgentExecutionRunnerTests.Fixture()
        let requested = try await fixture.request(input: "hello")
        let store = RefusingStore(refused: ["AgentLLMCallRecorded"])
        // The same stream, copied into a store that refuses the model's answer.
        _ = try await store.inner.append(
            to: fixture.stream, expected: .noStream,
            events: [NewEvent(eventID: requested.eventID, eventType: requested.eventType, schemaVersion: requested.schemaVersion, data: requested.data,
                metadata: requested.metadata)])
        let runner = AgentExecutionRunner(
            store: store, model: AgentExecutionRunnerTests.Model { _, _ in AgentExecutionRunnerTests.reply("a\0b") },
            configuration: .init(cancellationPoll: .milliseconds(20)), logger: Logger(label: "test"))
        try await runner.handle(try fixture.item(for: requested))
        let events = try await store.readStream(fixture.stream, from: 1, direction: .forward, limit: 10)
        #expect(events.map(\.eventType) == ["AgentExecutionRequested", "AgentExecutionStarted", "AgentExecutionFailed"])
        guard case .failed(let failed) = try AgentExecutionEvent.registry.decode(events[2], as: AgentExecutionEvent.self) else { return }
        #expect(failed.error.hasPrefix("the run's outcome could not be stored: "))
        #expect(!failed.retryable)
    }
}
