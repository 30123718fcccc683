import Commands
import Events
import Foundation
import Logging
@testable import Workers
import Synchronization
import Testing

/// Issue 17, finding 6: workers stalled for good while `/health` said ok. A retry publish failed on
/// a dead connection and the item was neither acked nor nacked; dead-lettered runs stayed
/// `running` for good.
@Suite struct StalledWorkerTests {
    /// A queue that delivers the given items once and records how each was settled.
    final class ScriptedQueue: WorkQueue {
        let items: [WorkItem]
        let failRetry: Bool
        let settled = Mutex<[String]>([])
        init(_ items: [WorkItem], failRetry: Bool = false) {
            self.items = items
            self.failRetry = failRetry
        }

        func items() async throws -> AsyncThrowingStream<WorkItem, any Error> {
            let items = items
            return AsyncThrowingStream { continuation in
                for item in items { continuation.yield(item) }
                continuation.finish()
            }
        }
        func complete(_ item: WorkItem) async throws { settled.withLock { $0.append("complete") } }
        func retry(_ item: WorkItem, after delay: Duration) async throws {
            if failRetry { throw CancellationError() }
            settled.withLock { $0.append("retry") }
        }
        func deadLetter(_ item: WorkItem) async throws { settled.withLock { $0.append("dead-letter") } }
        func release(_ item: WorkItem) async throws { settled.withLock { $0.append("release") } }
    }

    struct NoInbox: Inbox {
        func contains(_ messageID: String, consumer: String) async throws -> Bool { false }
        func record(_ messageID: String, consumer: String) async throws {}
    }

    struct Boom: Error {}

    static func item(attempt: Int) -> WorkItem { WorkItem(messageID: "m", type: "T", body: Data("{}".utf8), attempt: attempt, receipt: 1) }

    @Test func aRetryThatCannotBePublishedReleasesTheItemInsteadOfHoldingItsSlot() async throws {
        let queue = ScriptedQueue([Self.item(attempt: 1)], failRetry: true)
        let worker = Worker(name: "w", queue: queue, inbox: NoInbox(), maxAttempts: 3, logger: Logger(label: "t")) { _ in throw Boom() }
        try await worker.consume()
        #expect(queue.settled.withLock { $0 } == ["release"])
    }

    @Test func aGivenUpItemRecordsItsEndBeforeItIsDeadLettered() async throws {
        let queue = ScriptedQueue([Self.item(attempt: 3)])
        let ended = Mutex<[String]>([])
        let worker = Worker(
            name: "w", queue: queue, inbox: NoInbox(), maxAttempts: 3, logger: Logger(label: "t"),
            giveUp: { item, _ in ended.withLock { $0.append(item.messageID) } }
        ) { _ in throw Boom() }
        try await worker.consume()
        #expect(ended.withLock { $0 } == ["m"])
        #expect(queue.settled.withLock { $0 } == ["dead-letter"])
    }

    @Test func aGiveUpThatCannotBeRecordedLeavesTheItemToComeBack() async throws {
        let queue = ScriptedQueue([Self.item(attempt: 3)])
        let worker = Worker(
            name: "w", queue: queue, inbox: NoInbox(), maxAttempts: 3, logger: Logger(label: "t"), giveUp: { _, _ in throw Boom() }
        ) { _ in throw Boom() }
        try await worker.consume()
        #expect(queue.settled.withLock { $0 } == ["release"])
    }

    /// Captures what is logged, for the tests that read the log.
    final class LogLines: Sendable {
        let all = Mutex<[String]>([])
    }

    struct CapturingLogHandler: LogHandler {
        let lines: LogLines
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            lines.all.withLock { $0.append("\(event.level) \(event.message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })") }
        }
    }

    /// No timing is asserted: the handler runs until the log has named it twice (bounded, so a
    /// pool that never warns fails the test instead of hanging it), however slow the machine.
    @Test func aHandlerThatRunsLongIsNamedInTheLogWhileItRuns() async throws {
        let lines = LogLines()
        let handler = CapturingLogHandler(lines: lines)
        let queue = ScriptedQueue([Self.item(attempt: 1)])
        let slowLines: @Sendable () -> [String] = { lines.all.withLock { $0 }.filter { $0.contains("work item still running") } }
        let worker = Worker(
            name: "w", queue: queue, inbox: NoInbox(), slowAfter: .milliseconds(100), logger: Logger(label: "t") { _ in handler }
        ) { _ in
            let deadline = ContinuousClock.now.advanced(by: .seconds(60))
            while slowLines().count < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await worker.consume()
        let slow = slowLines()
        #expect(slow.count >= 2, "\(lines.all.withLock { $0 })")
        #expect(slow.allSatisfy { $0.hasPrefix("warning") && $0.contains("message.id=m") && $0.contains("attempt=1") }, "\(slow)")
        #expect(queue.settled.withLock { $0 } == ["complete"])
        // Nothing more once the item is settled (a warning already on its way when the handler
        // returned may still land; after that, silence).
        try await Task.sleep(for: .milliseconds(300))
        let settled = slowLines().count
        try await Task.sleep(for: .milliseconds(300))
        #expect(slowLines().count == settled)
    }

    @Test func aPoolWhoseSlotsAreAllHeldWithNothingSettledReportsThatItCannotTakeWork() {
        let status = WorkerStatus(concurrency: 2, stallAfter: .seconds(60))
        status.connected()
        status.started()
        #expect(status.problem() == nil)
        status.started()
        #expect(status.problem() == nil)
        #expect(status.problem(now: .now + .seconds(61))?.contains("all 2 slots busy") == true)
        status.settled()
        #expect(status.problem(now: .now + .seconds(61)) == nil)
        status.disconnected("connection refused")
        #expect(status.problem()?.contains("not connected") == true)
    }

    @Test func aPoolThatNeverConnectsIsDownAfterItsStartupGrace() {
        let status = WorkerStatus(concurrency: 1, stallAfter: .seconds(60))
        #expect(status.problem() == nil)
        #expect(status.problem(now: .now + WorkerStatus.startupGrace + .seconds(1))?.contains("not connected to its queue yet") == true)
    }
}

/// The watchdog: a run with no progress past its time limit plus a grace is failed, as an event.
@Suite struct RunWatchdogTests {
    static let logger = Logger(label: "test")

    /// A sandbox run requested and started (its worker then died): the stream, and a watchdog.
    static func startedSandboxRun(_ store: InMemoryEventStore, timeout: Int = 5) async throws -> (UUID, RunWatchdog) {
        let id = UUID()
        let handler = CommandHandler<CodeExecutionDecider>(store: store)
        let stream = CodeExecutionDecider.streamID(id)
        _ = try await handler.handle(
            .request(RequestCodeExecution(
                executionID: id, ownerID: "u", language: "python", code: "print(1)", limits: .init(timeoutSeconds: timeout), now: Date())),
            on: stream, context: CommandContext(userID: "u", tenantID: "t1"))
        _ = try await handler.handle(.start(executionID: id, attempt: 1, now: Date()), on: stream, context: CommandContext())
        let worker = CodeExecutionWorker(store: store, sandbox: UnstorableOutcomeTests.CountingSandbox(), logger: logger)
        let watchdog = RunWatchdog(
            runs: [SupervisedRuns(name: "sandbox", candidates: { _, _ in [id] }, failIfStalled: { try await worker.ending.failIfStalled($0, policy: $1, now: $2) })],
            policy: StallPolicy(grace: .seconds(60)), logger: logger)
        return (id, watchdog)
    }

    @Test func aRunSilentPastItsLimitAndGraceIsFailedOnceSayingWhy() async throws {
        let store = InMemoryEventStore()
        let (id, watchdog) = try await Self.startedSandboxRun(store)
        #expect(await watchdog.sweep(now: Date().addingTimeInterval(30)) == 0, "failed a run still inside its limit and grace")
        #expect(await watchdog.sweep(now: Date().addingTimeInterval(66)) == 1)
        #expect(await watchdog.sweep(now: Date().addingTimeInterval(66)) == 0, "failed twice")
        let events = try await store.readStream(CodeExecutionDecider.streamID(id).description, from: 1, direction: .forward, limit: 10)
        #expect(events.map(\.eventType) == ["CodeExecutionRequested", "CodeExecutionStarted", "CodeExecutionFailed"])
        guard case .failed(let failed) = try CodeExecutionEvent.registry.decode(events[2], as: CodeExecutionEvent.self) else { return }
        #expect(failed.error.contains("made no progress") && failed.error.contains("time limit is 5 s"))
        #expect(events[2].metadata.tenantID == "t1", "the watchdog's event carries the run's tenant")
    }

    @Test func aGivenUpSandboxRunEndsFailedWithTheReason() async throws {
        let store = InMemoryEventStore()
        let (id, _) = try await Self.startedSandboxRun(store)
        let requested = try await store.readStream(CodeExecutionDecider.streamID(id).description, from: 1, direction: .forward, limit: 1)[0]
        let body = try IntegrationMessage.body(
            eventID: requested.eventID, eventType: requested.eventType, contractVersion: 1, streamID: requested.streamID,
            streamVersion: requested.streamVersion, occurredAt: requested.recordedAt, correlationID: "c", causationID: "c", tenantID: "t1",
            rawData: requested.data)
        let worker = CodeExecutionWorker(store: store, sandbox: UnstorableOutcomeTests.CountingSandbox(), logger: Self.logger)
        try await worker.ending.giveUp(WorkItem(messageID: "m", type: requested.eventType, body: body, attempt: 3, receipt: 1), after: StalledWorkerTests.Boom())
        let last = try await store.readStream(CodeExecutionDecider.streamID(id).description, from: 3, direction: .forward, limit: 1)
        guard let event = last.first, case .failed(let failed) = try CodeExecutionEvent.registry.decode(event, as: CodeExecutionEvent.self) else {
            Issue.record("not failed")
            return
        }
        #expect(failed.error == "the run could not be completed: its work was given up after 3 tries")
    }

    /// A run never started may be waiting behind a backlog or an outage (its message is still
    /// queued): it is failed only after the pending grace, not after its time limit plus the grace.
    @Test func anAgentRunNeverStartedIsFailedOnlyAfterThePendingGrace() async throws {
        let fixture = AgentExecutionRunnerTests.Fixture()
        _ = try await fixture.request(timeout: 10)
        let runs = fixture.runner(OfflineLanguageModel()).ending
        let policy = StallPolicy(grace: .seconds(60), pendingGrace: .seconds(300))
        #expect(try await runs.failIfStalled(fixture.executionID, policy: policy, now: Date().addingTimeInterval(71)) == false)
        #expect(try await runs.failIfStalled(fixture.executionID, policy: policy, now: Date().addingTimeInterval(301)) == true)
        #expect(try await fixture.types() == ["AgentExecutionRequested", "AgentExecutionFailed"])
        guard case .failed(let failed) = try await fixture.events().last else { return }
        #expect(failed.error.hasPrefix("the run was not started within 30"))
    }
}
