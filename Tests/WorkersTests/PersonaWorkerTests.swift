import Commands
import Events
import Foundation
import Logging
import Testing
import Workers

/// The persona judge and the regression gate against the in-memory store and a stub model.
@Suite struct PersonaWorkerTests {
    typealias Model = AgentExecutionRunnerTests.Model
    static let logger = Logger(label: "test")

    static func definition(instructions: String) -> PersonaDefinition {
        PersonaDefinition(
            name: "Ada", role: "a patient mathematics tutor", personality: PersonaPersonality(tone: "warm", traits: ["patient", "precise"], style: "Socratic"),
            fewShotExamples: [], instructions: instructions, template: "You are {{ name }}. {{ instructions }}", variablesSchema: nil)
    }

    static func reply(_ text: String) -> ChatResponse { AgentExecutionRunnerTests.reply(text) }

    static func scores(_ tone: Double, _ role: Double, _ traits: Double) -> String {
        "{\"tone\": \(tone), \"role_adherence\": \(role), \"trait_alignment\": \(traits), \"reasoning\": \"scored\"}"
    }

    struct Fixture {
        let store = InMemoryEventStore()
        let personaID = UUID()

        /// A persona with one version per instruction text.
        func persona(_ versions: [String]) async throws {
            let handler = CommandHandler<PersonaDecider>(store: store)
            for (index, instructions) in versions.enumerated() {
                let command: PersonaDecider.Command =
                    index == 0
                    ? .create(personaID: personaID, ownerID: "user-1", definition: PersonaWorkerTests.definition(instructions: instructions), limits: .init(), now: Date())
                    : .revise(definition: PersonaWorkerTests.definition(instructions: instructions), limits: .init(), now: Date())
                _ = try await handler.handle(command, on: PersonaDecider.streamID(personaID), context: CommandContext(userID: "user-1"))
            }
        }

        func item(_ stream: StreamID, version: Int64) async throws -> WorkItem {
            let event = try await store.readStream(stream.description, from: version, direction: .forward, limit: 1)[0]
            let body = try IntegrationMessage.body(
                eventID: event.eventID, eventType: event.eventType, contractVersion: 1, streamID: event.streamID, streamVersion: event.streamVersion,
                occurredAt: event.recordedAt, correlationID: "c", causationID: "c", tenantID: "t", rawData: event.data)
            return WorkItem(messageID: event.eventID.uuidString, type: event.eventType, body: body, attempt: 1, receipt: 1)
        }

        func validate(_ responses: [String], judge: PersonaJudge) async throws -> PersonaValidationEvent {
            let validationID = UUID()
            let stream = PersonaValidationDecider.streamID(validationID)
            _ = try await CommandHandler<PersonaValidationDecider>(store: store).handle(
                .request(PersonaValidationRequested(validationID: validationID, personaID: personaID, ownerID: "user-1", version: 1, responses: responses, requestedAt: Date())),
                on: stream, context: CommandContext(userID: "user-1"))
            let worker = PersonaValidationWorker(store: store, judge: judge, logger: PersonaWorkerTests.logger)
            try await worker.handle(try await item(stream, version: 1))
            try await worker.handle(try await item(stream, version: 1))  // a redelivery appends nothing
            let events = try await store.readStream(stream.description, from: 1, direction: .forward, limit: 10)
            #expect(events.count == 2)
            return try PersonaValidationEvent.registry.decode(events[1], as: PersonaValidationEvent.self)
        }
    }

    @Test func aValidationRecordsTheScoresPerCriterionOneCallPerResponse() async throws {
        let fixture = Fixture()
        try await fixture.persona(["Be brief."])
        let model = Model { _, request in
            #expect(request.temperature == 0)
            let task = request.messages.last?.content ?? ""
            #expect(task.contains("<<<RESPONSE-") && task.contains("<<<END-RESPONSE-"))
            return Self.reply(task.contains("try 7 x 4") ? Self.scores(8, 9, 7) : Self.scores(2, 3, 4))
        }
        let outcome = try await fixture.validate(["I am patient: try 7 x 4.", "Whatever."], judge: PersonaJudge(model: model, modelName: "judge-model"))
        guard case .completed(let completed) = outcome else { Issue.record("not completed: \(outcome)"); return }
        #expect(model.count == 2)
        #expect(completed.judge == "judge-model")
        #expect(completed.results.map(\.scores) == [PersonaScores(tone: 8, roleAdherence: 9, traitAlignment: 7), PersonaScores(tone: 2, roleAdherence: 3, traitAlignment: 4)])
        #expect(completed.results.map(\.average) == [8, 3])
        #expect(completed.average == 5.5)
        #expect(completed.repairs == 0)
    }

    @Test func aMalformedReplyIsRepairedOnce() async throws {
        let fixture = Fixture()
        try await fixture.persona(["Be brief."])
        let model = Model { n, request in
            if n == 1 { return Self.reply("Sure! I'd give it a 7.") }
            #expect(request.messages.last?.content?.contains("could not be used") == true)
            return Self.reply("```json\n" + Self.scores(6, 6, 6) + "\n```")
        }
        let outcome = try await fixture.validate(["An answer."], judge: PersonaJudge(model: model, modelName: "judge-model"))
        guard case .completed(let completed) = outcome else { Issue.record("not completed: \(outcome)"); return }
        #expect(completed.repairs == 1)
        #expect(completed.results.first?.average == 6)
    }

    @Test(arguments: ["not json at all", "{\"tone\": 11, \"role_adherence\": 5, \"trait_alignment\": 5, \"reasoning\": \"x\"}"])
    func aReplyStillUnusableAfterItsRepairFailsWithTheRawReply(_ bad: String) async throws {
        let fixture = Fixture()
        try await fixture.persona(["Be brief."])
        let model = Model { _, _ in Self.reply(bad) }
        let outcome = try await fixture.validate(["An answer."], judge: PersonaJudge(model: model, modelName: "judge-model"))
        guard case .failed(let failed) = outcome else { Issue.record("not failed: \(outcome)"); return }
        #expect(model.count == 2)
        #expect(failed.rawReply == bad)
        #expect(failed.error.contains("after one repair attempt"))
    }

    @Test func theOfflineJudgeNamesItselfAndExplainsItsScore() async throws {
        let fixture = Fixture()
        try await fixture.persona(["Be brief."])
        let outcome = try await fixture.validate(["A warm, patient and precise Socratic tutor asks: what is 7 x 4?"], judge: PersonaJudge(model: nil, modelName: "ignored"))
        guard case .completed(let completed) = outcome else { Issue.record("not completed: \(outcome)"); return }
        #expect(completed.judge == "offline-judge")
        #expect(completed.results[0].scores.traitAlignment == 10)
        #expect(completed.results[0].reasoning.hasPrefix("offline-judge:"))
        let again = try await fixture.validate(["A warm, patient and precise Socratic tutor asks: what is 7 x 4?"], judge: PersonaJudge(model: nil, modelName: "ignored"))
        guard case .completed(let repeated) = again else { return }
        #expect(repeated.results == completed.results)  // deterministic
    }

    /// Version 2 answers worse on one case: the judge (the stub) scores responses written under
    /// "Version two" lower for the `hard` case only.
    @Test func aGateRefusesAMoveThatRegressesAndNamesTheCases() async throws {
        let fixture = Fixture()
        try await fixture.persona(["Version one.", "Version two."])
        let model = Model { _, request in
            let system = request.messages.first?.content ?? ""
            if system.hasPrefix("You evaluate") {  // the judge
                let task = request.messages.last?.content ?? ""
                return Self.reply(task.contains("answer(v2) to hard") ? Self.scores(2, 2, 2) : Self.scores(8, 8, 8))
            }
            let version = system.contains("Version two") ? "v2" : "v1"
            return Self.reply("answer(\(version)) to \(request.messages.last?.content ?? "")")
        }
        let release = PersonaReleaseDecider.streamID(fixture.personaID)
        let handler = CommandHandler<PersonaReleaseDecider>(store: fixture.store)
        let context = CommandContext(userID: "user-1")
        _ = try await handler.handle(
            .freezeEvaluationSet(personaID: fixture.personaID, cases: [.init(caseID: "easy", input: "easy"), .init(caseID: "hard", input: "hard")], now: Date()),
            on: release, context: context)
        func move(_ version: Int) -> PersonaReleaseDecider.Command {
            .moveLabel(.init(
                personaID: fixture.personaID, ownerID: "user-1", label: "production", version: version, latestVersion: 2,
                policy: .init(runs: 2, maxMeanDrop: 5, maxCaseDrop: 2), gateID: UUID(), now: Date()))
        }
        _ = try await handler.handle(move(1), on: release, context: CommandContext(userID: "user-1"))  // nothing holds it: no gate
        let started = try await handler.handle(move(2), on: release, context: CommandContext(userID: "user-1"))
        let gateID = try #require(started.state.openGate?.gateID)
        let worker = PersonaGateWorker(
            store: fixture.store, judge: PersonaJudge(model: model, modelName: "judge"), responder: (model, "m"), rendering: PersonaRendering(), logger: Self.logger)
        try await worker.handle(try await fixture.item(release, version: started.streamVersion))
        let (state, _) = try await handler.load(release.description)
        #expect(state.labels["production"] == 1)
        #expect(state.gates[gateID] == .refused)
        let last = try await fixture.store.readStream(release.description, from: .max, direction: .backward, limit: 1)[0]
        guard case .gateDecided(let verdict) = try PersonaReleaseEvent.registry.decode(last, as: PersonaReleaseEvent.self) else {
            Issue.record("no verdict")
            return
        }
        #expect(!verdict.passed)
        #expect(verdict.cases.filter(\.regressed).map(\.caseID) == ["hard"])
        #expect(verdict.reason.contains("hard"))
        #expect(verdict.candidateMean == 5 && verdict.baselineMean == 8)
        // 2 cases x 2 versions x 2 runs, a response and a judgement each.
        #expect(model.count == 16)
    }

    @Test func aGateThatPassesMovesTheLabelInTheSameAppend() async throws {
        let fixture = Fixture()
        try await fixture.persona(["Version one.", "Version two."])
        let release = PersonaReleaseDecider.streamID(fixture.personaID)
        let handler = CommandHandler<PersonaReleaseDecider>(store: fixture.store)
        _ = try await handler.handle(
            .freezeEvaluationSet(personaID: fixture.personaID, cases: [.init(caseID: "c", input: "hello")], now: Date()), on: release,
            context: CommandContext(userID: "user-1"))
        for version in [1, 2] {
            _ = try await handler.handle(
                .moveLabel(.init(
                    personaID: fixture.personaID, ownerID: "user-1", label: "production", version: version, latestVersion: 2, policy: .init(runs: 1),
                    gateID: UUID(), now: Date())),
                on: release, context: CommandContext(userID: "user-1"))
        }
        let version = try await fixture.store.streamVersion(release.description)
        let worker = PersonaGateWorker(
            store: fixture.store, judge: PersonaJudge(model: nil, modelName: "x"), responder: (OfflineLanguageModel(), "offline"), rendering: PersonaRendering(),
            logger: Self.logger)
        try await worker.handle(try await fixture.item(release, version: version))
        let tail = try await fixture.store.readStream(release.description, from: version + 1, direction: .forward, limit: 10)
        #expect(tail.map(\.eventType) == ["PersonaGateDecided", "PersonaLabelMoved"])
        #expect(Set(tail.map(\.checkpoint.transactionID)).count == 1)
        let (state, _) = try await handler.load(release.description)
        #expect(state.labels["production"] == 2 && state.openGate == nil)
    }
}
