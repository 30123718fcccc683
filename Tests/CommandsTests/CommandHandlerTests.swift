import Commands
import Events
import Foundation
import Testing

@Suite struct CommandHandlerTests {
    static let settings = AgentModelSettings(model: "offline", temperature: 0.7, maxTokens: 256)

    static func create(_ id: UUID, name: String = "Triage") -> AgentDecider.Command {
        .create(CreateAgent(agentID: id, ownerID: "user-1", name: name, instructions: "Sort.", settings: settings, now: Date()))
    }

    static func stream(_ id: UUID) -> StreamID { StreamID(category: AgentDecider.category, id: id) }

    @Test func appendsTheDecidedEventsWithMetadata() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        let context = CommandContext(commandID: "cmd-1", userID: "user-1", tenantID: "t1", correlationID: "req-9")
        let result = try await handler.handle(Self.create(id), on: Self.stream(id), context: context)
        #expect(result.streamVersion == 1)
        #expect(result.state.status == .active)
        let events = await store.allEvents
        #expect(events.count == 1)
        #expect(events[0].eventID == context.eventID(0))
        #expect(events[0].metadata == EventMetadata(correlationID: "req-9", causationID: "cmd-1", commandID: "cmd-1", userID: "user-1", tenantID: "t1"))
        #expect(events[0].eventType == "AgentCreated" && events[0].schemaVersion == 2)
    }

    @Test func aRepeatedCommandAppendsNothingAndReturnsTheFirstResult() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        let context = CommandContext(commandID: "same-key", userID: "user-1")
        let first = try await handler.handle(Self.create(id), on: Self.stream(id), context: context)
        // Deciding again would throw agent.exists; the handler must answer with the first result.
        let second = try await handler.handle(Self.create(id), on: Self.stream(id), context: context)
        #expect(second.duplicate)
        #expect(second.append?.positions == first.append?.positions)
        #expect(await store.allEvents.count == 1)
    }

    @Test func concurrentRepeatsOfOneCommandAppendOnce() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        let context = CommandContext(commandID: "same-key", userID: "user-1")
        let results = try await withThrowingTaskGroup(of: CommandResult<AgentDecider.State>.self) { group in
            for _ in 0..<8 { group.addTask { try await handler.handle(Self.create(id), on: Self.stream(id), context: context) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(await store.allEvents.count == 1)
        #expect(Set(results.compactMap { $0.append?.positions }).count == 1)
        #expect(results.filter { !$0.duplicate }.count == 1)
    }

    @Test func theSameKeyFromAnotherUserIsAnotherCommand() {
        let a = CommandContext(commandID: "k", userID: "alice").eventID(0)
        let b = CommandContext(commandID: "k", userID: "bob").eventID(0)
        #expect(a != b)
        #expect(a == CommandContext(commandID: "k", userID: "alice").eventID(0))
    }

    @Test func reusingAKeyForAnotherStreamIsRefused() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let context = CommandContext(commandID: "k", userID: "u")
        let a = UUID(), b = UUID()
        _ = try await handler.handle(Self.create(a), on: Self.stream(a), context: context)
        await #expect(throws: CommandHandlerError.idempotencyKeyReused) {
            _ = try await handler.handle(Self.create(b), on: Self.stream(b), context: context)
        }
    }

    @Test func aStaleIfMatchIsAPreconditionFailure() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        _ = try await handler.handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "New", now: Date()))
        await #expect(throws: CommandHandlerError.preconditionFailed(expected: 0, actual: 1)) {
            _ = try await handler.handle(change, on: Self.stream(id), context: CommandContext(), ifMatch: 0)
        }
        let ok = try await handler.handle(change, on: Self.stream(id), context: CommandContext(), ifMatch: 1)
        #expect(ok.streamVersion == 2)
    }

    @Test func retriesAfterAConflictAndDecidesOnTheNewState() async throws {
        let inner = InMemoryEventStore()
        let id = UUID()
        _ = try await CommandHandler<AgentDecider>(store: inner).handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        // Another writer slips in an instruction change before the first append attempt.
        let store = InterferingStore(inner: inner, interferences: 1) {
            let event = try NewEvent(
                AgentInstructionsChanged(agentID: id, instructions: "Other", changedAt: Date()), id: UUID(), metadata: EventMetadata())
            _ = try await inner.append(to: Self.stream(id).description, expected: .any, events: [event])
        }
        let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "Mine", now: Date()))
        let result = try await CommandHandler<AgentDecider>(store: store).handle(change, on: Self.stream(id), context: CommandContext())
        #expect(result.streamVersion == 3)
        #expect(result.state.instructions == "Mine")
        #expect(await store.appendAttempts == 2)
    }

    @Test func givesUpWithAConflictAfterBoundedRetries() async throws {
        let inner = InMemoryEventStore()
        let id = UUID()
        _ = try await CommandHandler<AgentDecider>(store: inner).handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        let store = InterferingStore(inner: inner, interferences: .max) {
            let event = try NewEvent(
                AgentInstructionsChanged(agentID: id, instructions: UUID().uuidString, changedAt: Date()), id: UUID(), metadata: EventMetadata())
            _ = try await inner.append(to: Self.stream(id).description, expected: .any, events: [event])
        }
        let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "Mine", now: Date()))
        await #expect(throws: CommandHandlerError.concurrencyConflict(streamID: Self.stream(id).description, attempts: 3)) {
            _ = try await CommandHandler<AgentDecider>(store: store, maxAttempts: 3).handle(change, on: Self.stream(id), context: CommandContext())
        }
        #expect(await store.appendAttempts == 3)
    }

    @Test func domainErrorsPassThroughUnchanged() async throws {
        let handler = CommandHandler<AgentDecider>(store: InMemoryEventStore())
        let id = UUID()
        await #expect(throws: DomainError.self) {
            _ = try await handler.handle(.delete(DeleteAgent(agentID: id, now: Date())), on: Self.stream(id), context: CommandContext())
        }
    }

    @Test func loadsFromASnapshotAndReadsOnlyLaterEvents() async throws {
        let inner = InMemoryEventStore()
        let snapshots = InMemorySnapshotStore()
        let policy = SnapshotPolicy(every: [AgentDecider.category: 2])
        let handler = CommandHandler<AgentDecider>(store: inner, snapshots: snapshots, policy: policy)
        let id = UUID()
        _ = try await handler.handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        for text in ["a", "b", "c"] {
            let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: text, now: Date()))
            _ = try await handler.handle(change, on: Self.stream(id), context: CommandContext())
        }
        let snapshot = try #require(await snapshots.latest(Self.stream(id).description))
        #expect(snapshot.streamVersion == 4)
        let counting = InterferingStore(inner: inner, interferences: 0) {}
        let (state, version) = try await CommandHandler<AgentDecider>(store: counting, snapshots: snapshots, policy: policy)
            .load(Self.stream(id).description)
        #expect(version == 4 && state.instructions == "c")
        // The first `interval` (2) events are read before the snapshot is asked for; then only the
        // events after the snapshot.
        #expect(await counting.readFromVersions == [1, 5])
    }

    @Test func theRepeatCheckAndTheFirstReadAreOneCallAndARepeatStillAnswersAsTheFirst() async throws {
        let inner = InMemoryEventStore()
        let store = InterferingStore(inner: inner, interferences: 0) {}
        let handler = CommandHandler<AgentDecider>(store: store, snapshots: CountingSnapshotStore(), policy: SnapshotPolicy(every: [AgentDecider.category: 50]))
        let id = UUID()
        let context = CommandContext(commandID: "create-once", userID: "user-1")
        let first = try await handler.handle(Self.create(id), on: Self.stream(id), context: context)
        #expect(await store.combinedReadFromVersions == [1])
        #expect(await store.readFromVersions.isEmpty)
        let again = try await handler.handle(Self.create(id), on: Self.stream(id), context: context)
        #expect(again.duplicate && again.streamVersion == first.streamVersion && again.append?.positions == first.append?.positions)
        #expect(await store.appendAttempts == 1)
        // A change reads on from the first event in the same call, and appends once.
        let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "x", now: Date()))
        let changed = try await handler.handle(change, on: Self.stream(id), context: CommandContext(commandID: "change", userID: "user-1"))
        #expect(changed.streamVersion == 2 && changed.state.instructions == "x")
        #expect(await store.combinedReadFromVersions == [1, 1, 1])
        #expect(await store.appendAttempts == 2)
    }

    @Test func aStreamShorterThanItsSnapshotIntervalIsReadWithoutAskingForASnapshot() async throws {
        let inner = InMemoryEventStore()
        let snapshots = CountingSnapshotStore()
        let policy = SnapshotPolicy(every: [AgentDecider.category: 50])
        let id = UUID()
        _ = try await CommandHandler<AgentDecider>(store: inner).handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        for text in ["a", "b"] {
            let change = AgentDecider.Command.changeInstructions(ChangeAgentInstructions(agentID: id, instructions: text, now: Date()))
            _ = try await CommandHandler<AgentDecider>(store: inner).handle(change, on: Self.stream(id), context: CommandContext())
        }
        let counting = InterferingStore(inner: inner, interferences: 0) {}
        let (state, version) = try await CommandHandler<AgentDecider>(store: counting, snapshots: snapshots, policy: policy)
            .load(Self.stream(id).description)
        #expect(version == 3 && state.instructions == "b")
        #expect(await counting.readFromVersions == [1])
        #expect(await snapshots.asked == 0)
        // Without an interval for the stream in its policy, a handler still asks.
        _ = try await CommandHandler<AgentDecider>(store: inner, snapshots: snapshots).load(Self.stream(id).description)
        #expect(await snapshots.asked == 1)
    }

    @Test func aSnapshotOfAnotherStateVersionIsIgnored() async throws {
        let inner = InMemoryEventStore()
        let snapshots = InMemorySnapshotStore()
        let id = UUID()
        _ = try await CommandHandler<AgentDecider>(store: inner).handle(Self.create(id), on: Self.stream(id), context: CommandContext())
        await snapshots.save(Snapshot(streamID: Self.stream(id).description, streamVersion: 1, stateVersion: 99, data: Data("{}".utf8)))
        let (state, version) = try await CommandHandler<AgentDecider>(store: inner, snapshots: snapshots).load(Self.stream(id).description)
        #expect(version == 1 && state.status == .active)
    }

    @Test func eventIDsAreRFC9562Version5() {
        // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
        let dns = UUID(uuidString: "6ba7b810-9dad-11d1-80b4-00c04fd430c8")!
        #expect(DeterministicID.v5(namespace: dns, name: "python.org") == UUID(uuidString: "886313e1-3b8a-5372-9b90-0c9aee199e5d")!)
    }
}

/// Wraps a store: runs `interfere` before the first `interferences` appends (another writer
/// winning the race), and records what it was asked.
actor InterferingStore: EventStore {
    let inner: InMemoryEventStore
    var remaining: Int
    let interfere: @Sendable () async throws -> Void
    private(set) var appendAttempts = 0
    private(set) var readFromVersions: [Int64] = []

    init(inner: InMemoryEventStore, interferences: Int, interfere: @escaping @Sendable () async throws -> Void) {
        self.inner = inner
        self.remaining = interferences
        self.interfere = interfere
    }

    func append(to streamID: String, expected: ExpectedVersion, events: [NewEvent]) async throws -> AppendResult {
        appendAttempts += 1
        if remaining > 0 {
            remaining -= 1
            try await interfere()
        }
        return try await inner.append(to: streamID, expected: expected, events: events)
    }

    func readStream(_ streamID: String, from version: Int64, direction: ReadDirection, limit: Int) async throws -> [RecordedEvent] {
        readFromVersions.append(version)
        return await inner.readStream(streamID, from: version, direction: direction, limit: limit)
    }

    func readAll(after checkpoint: Checkpoint, limit: Int) async throws -> [RecordedEvent] {
        await inner.readAll(after: checkpoint, limit: limit)
    }

    func priorAppend(firstEventID: UUID) async throws -> AppendResult? { await inner.priorAppend(firstEventID: firstEventID) }

    /// The versions the combined repeat check and first read started from.
    private(set) var combinedReadFromVersions: [Int64] = []

    func priorAppendAndStream(firstEventID: UUID, stream: String, from version: Int64, limit: Int) async throws
        -> (prior: AppendResult?, events: [RecordedEvent])
    {
        combinedReadFromVersions.append(version)
        return (await inner.priorAppend(firstEventID: firstEventID), await inner.readStream(stream, from: version, direction: .forward, limit: limit))
    }

    func streamVersion(_ streamID: String) async throws -> Int64 { await inner.streamVersion(streamID) }
}

/// Text with a NUL character is text: the Postgres adapter stores it escaped and gives it back
/// (`NulOutcomeTests`). It used to be refused here, which turned a program's or a model's NUL into
/// a failed write and the work into a retry (issue 17, finding 5).
@Suite struct NULCharacterTests {
    @Test func aCommandWhoseEventsHoldANULIsStoredAsGiven() async throws {
        let store = InMemoryEventStore()
        let handler = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        let result = try await handler.handle(
            .create(CreateAgent(
                agentID: id, ownerID: "o", name: "bad\u{0}name", instructions: "", settings: AgentModelSettings(model: "m", temperature: 0, maxTokens: 1),
                now: Date())),
            on: StreamID(category: "agent", id: id), context: CommandContext())
        #expect(result.state.name == "bad\u{0}name")
        let (state, _) = try await handler.load(StreamID(category: "agent", id: id).description)
        #expect(state.name == "bad\u{0}name")
    }
}

extension CommandHandlerTests {
    @Test func aKeptStateFoldsOnlyForwardAndNeverMissesAnotherProcesssEvents() async throws {
        let store = InMemoryEventStore()
        let memo = StateMemo<AgentDecider>(capacity: 2)
        let kept = CommandHandler<AgentDecider>(store: store, memo: memo)
        let elsewhere = CommandHandler<AgentDecider>(store: store)
        let id = UUID()
        _ = try await kept.handle(Self.create(id), on: Self.stream(id), context: CommandContext(commandID: "c1", userID: "user-1"))
        #expect(memo.kept(Self.stream(id).description)?.1 == 1)
        // Another process appends; the kept state is old, and the next load reads forward from it.
        _ = try await elsewhere.handle(
            .changeInstructions(ChangeAgentInstructions(agentID: id, instructions: "Sort faster.", now: Date())), on: Self.stream(id),
            context: CommandContext(commandID: "c2", userID: "user-1"))
        let (state, version) = try await kept.load(Self.stream(id).description)
        #expect(version == 2)
        #expect(state.instructions == "Sort faster.")
        #expect(memo.kept(Self.stream(id).description)?.1 == 2)
        // An older state never replaces a newer one.
        memo.keep(AgentDecider.initialState, at: 1, of: Self.stream(id).description)
        #expect(memo.kept(Self.stream(id).description)?.1 == 2)
        // The stream as of version 1 folds from the first event, not from the kept state.
        let (past, pastVersion) = try await kept.load(Self.stream(id).description, asOf: 1)
        #expect(pastVersion == 1)
        #expect(past.instructions == "Sort.")
        // Bounded: past its capacity the memo starts over.
        for _ in 0..<2 {
            let other = UUID()
            _ = try await kept.handle(Self.create(other), on: Self.stream(other), context: CommandContext(commandID: "c-\(other)", userID: "user-1"))
        }
        #expect(memo.kept(Self.stream(id).description) == nil)
    }
}

/// An in-memory snapshot store that counts how often it is asked for a stream's latest snapshot.
actor CountingSnapshotStore: SnapshotStore {
    let inner = InMemorySnapshotStore()
    var asked = 0

    func latest(_ streamID: String) async throws -> Snapshot? {
        asked += 1
        return await inner.latest(streamID)
    }

    func save(_ snapshot: Snapshot) async throws {
        await inner.save(snapshot)
    }
}
