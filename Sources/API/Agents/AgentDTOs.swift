import Commands
import Events
import Foundation
import Projections

/// The JSON the Agents routes accept and answer, snake_case as in the OpenAPI document. Field
/// names are spelled out (no key strategy), so user data such as `parameters` keeps its keys.
enum AgentDTO {
    /// The persona an agent speaks as: `{"id", "label"}` or `{"id", "version"}`.
    struct Persona: Codable, Equatable {
        var id: String
        var label: String?
        var version: Int?

        init(_ persona: AgentPersona) {
            id = persona.personaID.uuidString.lowercased()
            label = persona.label
            version = persona.version
        }

        func reference() throws -> AgentPersona {
            guard let personaID = UUID(uuidString: id) else {
                throw Problem(.unprocessableContent, code: "agent.persona_unavailable", detail: "persona.id is not a persona's id")
            }
            return AgentPersona(personaID: personaID, label: label, version: version)
        }
    }

    struct Create: Decodable {
        var name: String
        var instructions: String?
        var model: String?
        var temperature: Double?
        var maxTokens: Int?
        var plugins: [String]?
        var persona: Persona?

        enum CodingKeys: String, CodingKey {
            case name, instructions, model, temperature, plugins, persona
            case maxTokens = "max_tokens"
        }
    }

    struct Update: Decodable {
        var name: String?
        var instructions: String?
        var model: String?
        var temperature: Double?
        var maxTokens: Int?
        var plugins: [String]?
        /// Absent: unchanged; null: removed.
        var persona: Persona??

        enum CodingKeys: String, CodingKey {
            case name, instructions, model, temperature, plugins, persona
            case maxTokens = "max_tokens"
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            instructions = try container.decodeIfPresent(String.self, forKey: .instructions)
            model = try container.decodeIfPresent(String.self, forKey: .model)
            temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
            maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens)
            plugins = try container.decodeIfPresent([String].self, forKey: .plugins)
            if container.contains(.persona) {
                persona = try container.decodeNil(forKey: .persona) ? .some(nil) : .some(try container.decode(Persona.self, forKey: .persona))
            }
        }

        var isEmpty: Bool {
            name == nil && instructions == nil && model == nil && temperature == nil && maxTokens == nil && plugins == nil && persona == nil
        }
    }

    struct Execute: Decodable {
        var input: String
        var parameters: [String: JSONValue]?
        var timeoutSeconds: Int?

        enum CodingKeys: String, CodingKey {
            case input, parameters
            case timeoutSeconds = "timeout_seconds"
        }
    }

    struct Agent: Codable {
        var id: String
        var name: String
        var instructions: String
        var model: String
        var temperature: Double
        var maxTokens: Int
        var plugins: [String]
        var status: String
        var version: Int64
        var ownerID: String
        var createdAt: String
        var updatedAt: String?
        var persona: Persona?

        enum CodingKeys: String, CodingKey {
            case id, name, instructions, model, temperature, plugins, status, version, persona
            case maxTokens = "max_tokens"
            case ownerID = "owner_id"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        init(_ view: AgentView) {
            id = view.id.uuidString.lowercased()
            name = view.name
            instructions = view.instructions
            model = view.model
            temperature = view.temperature
            maxTokens = view.maxTokens
            plugins = view.plugins
            status = view.status
            version = view.version
            ownerID = view.ownerID
            createdAt = Timestamp.format(view.createdAt)
            updatedAt = Timestamp.format(view.updatedAt)
            persona = view.persona.map(Persona.init)
        }

        init(id: UUID, state: AgentDecider.State, version: Int64, updatedAt: Date?) {
            self.id = id.uuidString.lowercased()
            name = state.name ?? ""
            instructions = state.instructions ?? ""
            model = state.settings?.model ?? ""
            temperature = state.settings?.temperature ?? 0
            maxTokens = state.settings?.maxTokens ?? 0
            plugins = state.plugins
            status = state.status.rawValue
            self.version = version
            ownerID = state.ownerID ?? ""
            createdAt = state.createdAt.map(Timestamp.format) ?? ""
            self.updatedAt = updatedAt.map(Timestamp.format)
            persona = state.persona.map(Persona.init)
        }
    }

    struct Accepted: Codable {
        var executionID: String
        var status: String
        /// Seconds the run is expected to take, from the agent's recent runs.
        var estimatedTime: Int

        enum CodingKeys: String, CodingKey {
            case status
            case executionID = "execution_id"
            case estimatedTime = "estimated_time"
        }
    }

    struct Execution: Codable, Equatable {
        var executionID: String
        var agentID: String
        var status: String
        var output: String?
        var error: String?
        var model: String?
        var durationMs: Int?
        var tokensUsed: Int
        var promptTokens: Int
        var completionTokens: Int
        var cost: Double
        var requestedAt: String?
        var finishedAt: String?
        /// A fork's origin and the model call it started from.
        var forkedFrom: String?
        var fromCall: Int?

        enum CodingKeys: String, CodingKey {
            case status, output, error, model, cost
            case forkedFrom = "forked_from"
            case fromCall = "from_call"
            case executionID = "execution_id"
            case agentID = "agent_id"
            case durationMs = "duration_ms"
            case tokensUsed = "tokens_used"
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case requestedAt = "requested_at"
            case finishedAt = "finished_at"
        }

        /// Every key always present, `null` when not (yet) known: clients read one shape.
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(executionID, forKey: .executionID)
            try container.encode(agentID, forKey: .agentID)
            try container.encode(status, forKey: .status)
            try container.encode(output, forKey: .output)
            try container.encode(error, forKey: .error)
            try container.encode(model, forKey: .model)
            try container.encode(durationMs, forKey: .durationMs)
            try container.encode(tokensUsed, forKey: .tokensUsed)
            try container.encode(promptTokens, forKey: .promptTokens)
            try container.encode(completionTokens, forKey: .completionTokens)
            try container.encode(cost, forKey: .cost)
            try container.encode(requestedAt, forKey: .requestedAt)
            try container.encode(finishedAt, forKey: .finishedAt)
            try container.encode(forkedFrom, forKey: .forkedFrom)
            try container.encode(fromCall, forKey: .fromCall)
        }

        init(_ view: ExecutionView) {
            executionID = view.id.uuidString.lowercased()
            agentID = view.agentID.uuidString.lowercased()
            status = view.status
            output = view.output
            error = view.error
            model = view.model
            durationMs = view.durationMs
            tokensUsed = view.promptTokens + view.completionTokens
            promptTokens = view.promptTokens
            completionTokens = view.completionTokens
            cost = view.cost
            requestedAt = view.requestedAt.map(Timestamp.format)
            finishedAt = view.finishedAt.map(Timestamp.format)
            forkedFrom = view.forkedFrom?.uuidString.lowercased()
            fromCall = view.fromCall
        }
    }

    struct Cancelled: Codable {
        var executionID: String
        var status: String
        enum CodingKeys: String, CodingKey {
            case status
            case executionID = "execution_id"
        }
    }

    struct Deleted: Codable {
        var id: String
        var status: String
    }

    struct UsageDay: Codable {
        var day: String
        var modelCalls: Int
        var executions: Int
        var completed: Int
        var failed: Int
        var promptTokens: Int
        var completionTokens: Int
        var tokensUsed: Int
        var cost: Double

        enum CodingKeys: String, CodingKey {
            case day, executions, completed, failed, cost
            case modelCalls = "model_calls"
            case promptTokens = "prompt_tokens"
            case completionTokens = "completion_tokens"
            case tokensUsed = "tokens_used"
        }

        init(_ usage: AgentUsageDay) {
            day = usage.day
            modelCalls = usage.modelCalls
            executions = usage.executions
            completed = usage.completed
            failed = usage.failed
            promptTokens = usage.promptTokens
            completionTokens = usage.completionTokens
            tokensUsed = usage.promptTokens + usage.completionTokens
            cost = usage.cost
        }
    }

    struct Usage: Codable {
        var agentID: String
        var days: [UsageDay]
        enum CodingKeys: String, CodingKey {
            case days
            case agentID = "agent_id"
        }
    }
}
