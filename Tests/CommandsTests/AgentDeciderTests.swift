import Commands
import Events
import Foundation
import Testing

@Suite struct AgentDeciderTests {
    typealias Spec = DeciderSpec<AgentDecider>
    static let id = UUID(uuidString: "6F9619FF-8B86-D011-B42D-00CF4FC964FF")!
    static let now = Date(timeIntervalSince1970: 1_767_607_200)
    static let settings = AgentModelSettings(model: "offline", temperature: 0.7, maxTokens: 256)

    static func create(name: String = "Triage", temperature: Double = 0.7, maxTokens: Int = 256) -> AgentDecider.Command {
        .create(CreateAgent(
            agentID: id, ownerID: "user-1", name: name, instructions: "Sort tickets.",
            settings: AgentModelSettings(model: "offline", temperature: temperature, maxTokens: maxTokens), now: now))
    }

    static let created = AgentEvent.created(AgentCreated(
        agentID: id, ownerID: "user-1", name: "Triage", instructions: "Sort tickets.", settings: settings, plugins: [],
        createdAt: now))

    @Test func createsAnAgent() throws {
        let state = try Spec.given().when(Self.create()).then([Self.created])
        #expect(state.status == .active)
        #expect(state.ownerID == "user-1")
    }

    @Test(arguments: ["", "   ", String(repeating: "x", count: 256)])
    func rejectsANameOutside1To255Characters(_ name: String) throws {
        try Spec.given().when(Self.create(name: name)).thenThrows("agent.name_length")
    }

    /// The probe stored a 600 KB name as 255 "characters": one letter and 300,000 combining marks.
    @Test func rejectsANameOfOneCharacterAndHundredsOfKilobytes() throws {
        try Spec.given().when(Self.create(name: "a" + String(repeating: "\u{0301}", count: 300_000))).thenThrows("agent.name_length")
    }

    @Test func acceptsA255CharacterNameInAnyScript() throws {
        let events = try AgentDecider.decide(Self.create(name: String(repeating: "😀", count: 255)), state: AgentDecider.initialState)
        #expect(events.count == 1)
    }

    @Test func acceptsA255CharacterName() throws {
        let name = String(repeating: "x", count: 255)
        let events = try AgentDecider.decide(Self.create(name: name), state: AgentDecider.initialState)
        #expect(events.count == 1)
    }

    @Test(arguments: [-0.1, 2.01])
    func rejectsATemperatureOutside0To2(_ temperature: Double) throws {
        try Spec.given().when(Self.create(temperature: temperature)).thenThrows("agent.temperature_range")
    }

    @Test(arguments: [0, -5, 1_000_001, Int.max])
    func rejectsMaxTokensOutside1ToAMillion(_ maxTokens: Int) throws {
        try Spec.given().when(Self.create(maxTokens: maxTokens)).thenThrows("agent.max_tokens")
    }

    @Test func rejectsCreatingAnAgentTwice() throws {
        try Spec.given([Self.created]).when(Self.create()).thenThrows("agent.exists")
    }

    @Test func changesInstructions() throws {
        let change = ChangeAgentInstructions(agentID: Self.id, instructions: "Be brief.", now: Self.now)
        let state = try Spec.given([Self.created]).when(.changeInstructions(change))
            .then([.instructionsChanged(AgentInstructionsChanged(agentID: Self.id, instructions: "Be brief.", changedAt: Self.now))])
        #expect(state.instructions == "Be brief.")
    }

    @Test func changingToTheSameInstructionsDecidesNothing() throws {
        let change = ChangeAgentInstructions(agentID: Self.id, instructions: "Sort tickets.", now: Self.now)
        try Spec.given([Self.created]).when(.changeInstructions(change)).then([])
    }

    @Test func rejectsCommandsToAMissingAgent() throws {
        try Spec.given().when(.delete(DeleteAgent(agentID: Self.id, now: Self.now))).thenThrows("agent.not_found")
    }

    @Test func deletesAnAgent() throws {
        let state = try Spec.given([Self.created]).when(.delete(DeleteAgent(agentID: Self.id, now: Self.now)))
            .then([.deleted(AgentDeleted(agentID: Self.id, deletedAt: Self.now))])
        #expect(state.status == .deleted)
    }

    @Test func rejectsEveryCommandToADeletedAgent() throws {
        let history = [Self.created, .deleted(AgentDeleted(agentID: Self.id, deletedAt: Self.now))]
        try Spec.given(history).when(.delete(DeleteAgent(agentID: Self.id, now: Self.now))).thenThrows("agent.deleted")
        try Spec.given(history)
            .when(.changeInstructions(ChangeAgentInstructions(agentID: Self.id, instructions: "x", now: Self.now)))
            .thenThrows("agent.deleted")
        try Spec.given(history).when(Self.create()).thenThrows("agent.exists")
    }

    @Test func theSpecHelperReportsAWrongExpectation() {
        #expect(throws: DeciderSpecFailure.self) { try Spec.given().when(Self.create()).then([]) }
        #expect(throws: DeciderSpecFailure.self) { try Spec.given().when(Self.create()).thenThrows("agent.exists") }
    }
}

@Suite struct AgentPluginAndUpdateTests {
    typealias Spec = DeciderSpec<AgentDecider>
    static let id = AgentDeciderTests.id
    static let now = AgentDeciderTests.now

    @Test func rejectsAnUnknownPluginAtCreation() throws {
        try Spec.given().when(.create(CreateAgent(
            agentID: Self.id, ownerID: "user-1", name: "A", instructions: "", settings: AgentDeciderTests.settings,
            plugins: ["web.search"], now: Self.now))).thenThrows("agent.plugin_unknown")
    }

    @Test func rejectsAPluginListedTwice() throws {
        try Spec.given().when(.create(CreateAgent(
            agentID: Self.id, ownerID: "user-1", name: "A", instructions: "", settings: AgentDeciderTests.settings,
            plugins: ["time.now", "time.now"], now: Self.now))).thenThrows("agent.plugin_duplicate")
    }

    @Test func addsAndRemovesAPlugin() throws {
        let added = AgentEvent.pluginAdded(AgentPluginAdded(agentID: Self.id, plugin: "time.now", addedAt: Self.now))
        let state = try Spec.given([AgentDeciderTests.created])
            .when(.addPlugin(AddAgentPlugin(agentID: Self.id, plugin: "time.now", now: Self.now))).then([added])
        #expect(state.plugins == ["time.now"])
        try Spec.given([AgentDeciderTests.created, added])
            .when(.addPlugin(AddAgentPlugin(agentID: Self.id, plugin: "time.now", now: Self.now))).then([])
        try Spec.given([AgentDeciderTests.created, added])
            .when(.removePlugin(RemoveAgentPlugin(agentID: Self.id, plugin: "time.now", now: Self.now)))
            .then([.pluginRemoved(AgentPluginRemoved(agentID: Self.id, plugin: "time.now", removedAt: Self.now))])
    }

    @Test func removingAPluginTheAgentLacksIsNotFound() throws {
        try Spec.given([AgentDeciderTests.created])
            .when(.removePlugin(RemoveAgentPlugin(agentID: Self.id, plugin: "time.now", now: Self.now))).thenThrows("agent.plugin_not_found")
    }

    @Test func anUpdateBecomesOneEventPerRealChange() throws {
        let update = UpdateAgent(agentID: Self.id, name: "Renamed", instructions: "Sort tickets.", temperature: 1.5, plugins: ["math.evaluate"], now: Self.now)
        try Spec.given([AgentDeciderTests.created]).when(.update(update)).then([
            .renamed(AgentRenamed(agentID: Self.id, name: "Renamed", renamedAt: Self.now)),
            .modelSettingsChanged(AgentModelSettingsChanged(
                agentID: Self.id, settings: AgentModelSettings(model: "offline", temperature: 1.5, maxTokens: 256), changedAt: Self.now)),
            .pluginAdded(AgentPluginAdded(agentID: Self.id, plugin: "math.evaluate", addedAt: Self.now)),
        ])
    }

    @Test func anUpdateWithInvalidSettingsIsRefusedWhole() throws {
        try Spec.given([AgentDeciderTests.created])
            .when(.update(UpdateAgent(agentID: Self.id, name: "Fine", maxTokens: 0, now: Self.now))).thenThrows("agent.max_tokens")
    }

    @Test func aDeletedAgentAcceptsNoUpdate() throws {
        try Spec.given([AgentDeciderTests.created, .deleted(AgentDeleted(agentID: Self.id, deletedAt: Self.now))])
            .when(.update(UpdateAgent(agentID: Self.id, name: "Again", now: Self.now))).thenThrows("agent.deleted")
    }
}
