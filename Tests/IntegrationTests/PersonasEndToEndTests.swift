import Adapters
import Commands
import Events
import Foundation
import Testing

/// The Personas module through `chronicle serve`: validations and gates over RabbitMQ workers
/// with the offline judge and the stub model, and an agent run that speaks as a persona.
@Suite(.serialized) struct PersonasEndToEndTests {
    static func persona(instructions: String = "Answer in at most three sentences.", template: String? = nil) -> [String: Any] {
        var body: [String: Any] = [
            "name": "Ada", "role": "a patient mathematics tutor",
            "personality": ["tone": "warm", "traits": ["patient", "precise"], "style": "Socratic"],
            "instructions": instructions,
            "template": template ?? "You are {{ name }}, {{ role }}. {{ instructions }}",
        ]
        if template?.contains("topic") == true {
            body["variables_schema"] = ["type": "object", "required": ["topic"], "properties": ["topic": ["type": "string", "maxLength": 80]]]
        }
        return body
    }

    static func create(_ client: HTTPTestClient, _ body: [String: Any] = persona()) async throws -> String {
        let created = try await client.send("POST", "/api/v1/personas", json: body)
        #expect(created.status == 201, "create answered \(created.status): \(created.text)")
        return try #require(created.json["id"] as? String)
    }

    static func done(_ json: [String: Any]) -> Bool { ["completed", "failed"].contains(json["status"] as? String ?? "") }

    @Test func theOfflineJudgeScoresAValidationThroughTheWorkers() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let id = try await Self.create(client)
                let accepted = try await client.send(
                    "POST", "/api/v1/personas/\(id)/validate", json: ["responses": ["A warm, patient and precise answer: what is 7 x 4?", "No."]])
                #expect(accepted.status == 202, "\(accepted.text)")
                let location = try #require(accepted.headers["location"])
                let done = try await client.poll(location, until: Self.done)
                #expect(done.json["status"] as? String == "completed", "\(done.text)")
                #expect(done.json["judge"] as? String == "offline-judge")
                let results = try #require(done.json["results"] as? [[String: Any]])
                #expect(results.count == 2)
                let first = try #require(results.first?["scores"] as? [String: Double])
                #expect(first["trait_alignment"] == 10)
                #expect((results.last?["average"] as? Double ?? 1) < (results.first?["average"] as? Double ?? 0))
                let history = try await client.send("GET", "/api/v1/personas/\(id)/validations?version=1")
                #expect((history.json["items"] as? [[String: Any]])?.count == 1)
            }
        }
    }

    @Test func aMalformedJudgeFailsTheValidationWithItsRawReplyAndAGateRefusalNamesTheCases() async throws {
        let stub = StubModelServer()
        try await stub.run { url in
            try await TestServers.withDatabase { database in
                try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_LLM_BASE_URL": url, "CHRONICLE_LLM_MODEL": "stub-judge"]) { client, _ in
                    let id = try await Self.create(client)
                    let accepted = try await client.send("POST", "/api/v1/personas/\(id)/validate", json: ["responses": ["MALFORMED on purpose"]])
                    let failed = try await client.poll(try #require(accepted.headers["location"]), until: Self.done)
                    #expect(failed.json["status"] as? String == "failed")
                    #expect(failed.json["raw_reply"] as? String == "I would say 7 out of 10.")
                    #expect((failed.json["error"] as? String ?? "").contains("after one repair attempt"))

                    // Version 2 answers the hard case worse; moving production to it is refused.
                    var revised = Self.persona(instructions: "REGRESS")
                    revised["name"] = "Ada"
                    #expect(try await client.send("PUT", "/api/v1/personas/\(id)", json: revised).status == 200)
                    let cases = ["cases": [["id": "easy", "input": "easy"], ["id": "hard", "input": "hard"]]]
                    #expect(try await client.send("PUT", "/api/v1/personas/\(id)/evaluation-set", json: cases).status == 200)
                    #expect(try await client.send("PUT", "/api/v1/personas/\(id)/labels/production", json: ["version": 1]).status == 200)
                    let refused = try await client.send("PUT", "/api/v1/personas/\(id)/labels/production", json: ["version": 2])
                    #expect(refused.status == 409, "\(refused.text)")
                    #expect(refused.json["code"] as? String == "persona.gate_refused")
                    #expect(refused.json["regressed_cases"] as? [String] == ["hard"])
                    #expect((refused.json["detail"] as? String ?? "").contains("hard"))
                    let rendered = try await client.send("GET", "/api/v1/personas/\(id)/render?label=production")
                    #expect(rendered.json["persona_version"] as? Int == 1)
                    let gate = try await client.send("GET", "/api/v1/personas/\(id)/gates/\(refused.json["gate_id"] as? String ?? "")")
                    #expect(gate.json["status"] as? String == "refused")
                    #expect((gate.json["cases"] as? [[String: Any]])?.count == 2)
                }
            }
        }
    }

    @Test func anAgentRunWithAPersonaRecordsTheRenderedPrompt() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let template = "You are {{ name }}. Today's topic: {{ topic }}."
                let id = try await Self.create(client, Self.persona(template: template))
                #expect(try await client.send("PUT", "/api/v1/personas/\(id)/labels/production", json: ["version": 1]).status == 200)
                let created = try await client.send(
                    "POST", "/api/v1/agents", json: ["name": "Tutor", "persona": ["id": id, "label": "production"]])
                #expect(created.status == 201, "\(created.text)")
                let agent = try #require(created.json["id"] as? String)
                #expect((created.json["persona"] as? [String: Any])?["label"] as? String == "production")
                let missing = try await client.send("POST", "/api/v1/agents/\(agent)/execute", json: ["input": "hi"])
                #expect(missing.status == 422, "the persona's required variable is missing: \(missing.text)")
                let accepted = try await client.send(
                    "POST", "/api/v1/agents/\(agent)/execute", json: ["input": "What is a fraction?", "parameters": ["topic": "fractions"]])
                #expect(accepted.status == 202, "\(accepted.text)")
                let execution = try #require(accepted.json["execution_id"] as? String)
                _ = try await client.poll("/api/v1/agents/\(agent)/executions/\(execution)", until: AgentsEndToEndTests.terminal)
                let events = try await AgentsEndToEndTests.events(database, execution: execution)
                guard case .requested(let requested) = events.first else {
                    Issue.record("no request")
                    return
                }
                #expect(requested.persona?.renderedPrompt == "You are Ada. Today's topic: fractions.")
                #expect(requested.persona?.version == 1)
                let call = events.compactMap { if case .llmCallRecorded(let call) = $0 { call } else { nil } }.first
                let messages = call?.request["messages"]
                #expect(messages?[arrayIndex: 0]?["content"] == .string("You are Ada. Today's topic: fractions."))
                let others = try await client.send(
                    "POST", "/api/v1/agents", json: ["name": "Other", "persona": ["id": UUID().uuidString, "label": "production"]])
                #expect(others.status == 422)
            }
        }
    }
}

extension JSONValue {
    subscript(arrayIndex index: Int) -> JSONValue? {
        guard case .array(let items) = self, index < items.count else { return nil }
        return items[index]
    }
}
