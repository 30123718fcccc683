import Commands
import Events
import Foundation
import Projections

/// The Personas module's JSON shapes (snake_case, as in openapi.yaml).
enum PersonaDTO {
    static func iso(_ date: Date) -> String { Timestamp.format(date) }
    static func id(_ id: UUID) -> String { id.uuidString.lowercased() }

    struct Personality: Codable {
        var tone: String
        var traits: [String]
        var style: String
    }

    struct Example: Codable {
        var userInput: String
        var assistantResponse: String

        enum CodingKeys: String, CodingKey {
            case userInput = "user_input"
            case assistantResponse = "assistant_response"
        }
    }

    /// A persona version, with where its labels point.
    struct Persona: Encodable {
        var id: String
        var version: Int
        var latestVersion: Int
        var labels: [String: Int]
        var name: String
        var role: String
        var personality: Personality
        var fewShotExamples: [Example]
        var instructions: String
        var template: String
        var templateHash: String
        var variablesSchema: JSONValue?
        var createdAt: String

        enum CodingKeys: String, CodingKey {
            case id, version, labels, name, role, personality, instructions, template
            case latestVersion = "latest_version"
            case fewShotExamples = "few_shot_examples"
            case templateHash = "template_hash"
            case variablesSchema = "variables_schema"
            case createdAt = "created_at"
        }

        init(id: UUID, version: PersonaDecider.Version, latest: Int, labels: [String: Int]) {
            let definition = version.definition
            self.id = PersonaDTO.id(id)
            self.version = version.number
            latestVersion = latest
            self.labels = labels
            name = definition.name
            role = definition.role
            personality = Personality(tone: definition.personality.tone, traits: definition.personality.traits, style: definition.personality.style)
            fewShotExamples = definition.fewShotExamples.map { Example(userInput: $0.userInput, assistantResponse: $0.assistantResponse) }
            instructions = definition.instructions
            template = definition.template
            templateHash = version.templateHash
            variablesSchema = definition.variablesSchema
            createdAt = PersonaDTO.iso(version.createdAt)
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(version, forKey: .version)
            try container.encode(latestVersion, forKey: .latestVersion)
            try container.encode(labels, forKey: .labels)
            try container.encode(name, forKey: .name)
            try container.encode(role, forKey: .role)
            try container.encode(personality, forKey: .personality)
            try container.encode(fewShotExamples, forKey: .fewShotExamples)
            try container.encode(instructions, forKey: .instructions)
            try container.encode(template, forKey: .template)
            try container.encode(templateHash, forKey: .templateHash)
            try container.encode(variablesSchema ?? .null, forKey: .variablesSchema)
            try container.encode(createdAt, forKey: .createdAt)
        }
    }

    struct Summary: Encodable {
        var id: String
        var name: String
        var role: String
        var latestVersion: Int
        var labels: [String: Int]
        var createdAt: String
        var updatedAt: String

        enum CodingKeys: String, CodingKey {
            case id, name, role, labels
            case latestVersion = "latest_version"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        init(_ view: PersonaSummary) {
            id = PersonaDTO.id(view.id)
            name = view.name
            role = view.role
            latestVersion = view.latestVersion
            labels = view.labels
            createdAt = PersonaDTO.iso(view.createdAt)
            updatedAt = PersonaDTO.iso(view.updatedAt)
        }
    }

    /// Which version a render, a validation or a label move means: a label, a number, or (neither)
    /// the latest.
    struct Selector: Decodable {
        var label: String?
        var version: Int?
    }

    struct Render: Decodable {
        var contextVariables: [String: JSONValue]?
        var label: String?
        var version: Int?

        enum CodingKeys: String, CodingKey {
            case label, version
            case contextVariables = "context_variables"
        }
    }

    struct Rendered: Encodable {
        var renderedPrompt: String
        var personaVersion: Int
        var label: String?
        var templateHash: String

        enum CodingKeys: String, CodingKey {
            case label
            case renderedPrompt = "rendered_prompt"
            case personaVersion = "persona_version"
            case templateHash = "template_hash"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(renderedPrompt, forKey: .renderedPrompt)
            try container.encode(personaVersion, forKey: .personaVersion)
            try container.encode(label, forKey: .label)
            try container.encode(templateHash, forKey: .templateHash)
        }
    }

    struct Validate: Decodable {
        var responses: [String]
        var label: String?
        var version: Int?
    }

    struct ValidationAccepted: Encodable {
        var validationID: String
        var personaVersion: Int
        var status: String

        enum CodingKeys: String, CodingKey {
            case status
            case validationID = "validation_id"
            case personaVersion = "persona_version"
        }
    }

    struct Scores: Encodable {
        var tone: Double
        var roleAdherence: Double
        var traitAlignment: Double

        enum CodingKeys: String, CodingKey {
            case tone
            case roleAdherence = "role_adherence"
            case traitAlignment = "trait_alignment"
        }
    }

    struct Judged: Encodable {
        var index: Int
        var scores: Scores
        var average: Double
        var reasoning: String
    }

    struct Validation: Encodable {
        var validationID: String
        var personaID: String
        var personaVersion: Int
        var status: String
        var judge: String?
        var average: Double?
        var repairs: Int?
        var results: [Judged]
        var error: String?
        var rawReply: String?
        var requestedAt: String
        var finishedAt: String?

        enum CodingKeys: String, CodingKey {
            case status, judge, average, repairs, results, error
            case validationID = "validation_id"
            case personaID = "persona_id"
            case personaVersion = "persona_version"
            case rawReply = "raw_reply"
            case requestedAt = "requested_at"
            case finishedAt = "finished_at"
        }

        init(_ view: PersonaValidationView) {
            validationID = PersonaDTO.id(view.id)
            personaID = PersonaDTO.id(view.personaID)
            personaVersion = view.version
            status = view.status
            judge = view.judge
            average = view.average
            repairs = view.repairs
            results = (view.results ?? []).map {
                Judged(
                    index: $0.index, scores: Scores(tone: $0.scores.tone, roleAdherence: $0.scores.roleAdherence, traitAlignment: $0.scores.traitAlignment),
                    average: $0.average, reasoning: $0.reasoning)
            }
            error = view.error
            rawReply = view.rawReply
            requestedAt = PersonaDTO.iso(view.requestedAt)
            finishedAt = view.finishedAt.map(PersonaDTO.iso)
        }

        /// A validation accepted but not yet in the read model: pending, as requested.
        init(_ requested: PersonaValidationRequested) {
            self.init(PersonaValidationView(
                id: requested.validationID, personaID: requested.personaID, ownerID: requested.ownerID, version: requested.version,
                responses: requested.responses.count, status: "pending", judge: nil, average: nil, repairs: nil, results: nil, error: nil, rawReply: nil,
                requestedAt: requested.requestedAt, finishedAt: nil))
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(validationID, forKey: .validationID)
            try container.encode(personaID, forKey: .personaID)
            try container.encode(personaVersion, forKey: .personaVersion)
            try container.encode(status, forKey: .status)
            try container.encode(judge, forKey: .judge)
            try container.encode(average, forKey: .average)
            try container.encode(repairs, forKey: .repairs)
            try container.encode(results, forKey: .results)
            try container.encode(error, forKey: .error)
            try container.encode(rawReply, forKey: .rawReply)
            try container.encode(requestedAt, forKey: .requestedAt)
            try container.encode(finishedAt, forKey: .finishedAt)
        }
    }

    struct Validations: Encodable {
        var items: [Validation]
    }

    struct MoveLabel: Decodable {
        var version: Int
    }

    struct LabelMoved: Encodable {
        var label: String
        var version: Int
        var gate: Gate?
    }

    struct EvaluationCase: Codable {
        var id: String
        var input: String
        var reference: String?
        var variables: [String: JSONValue]?
    }

    struct EvaluationSet: Codable {
        var cases: [EvaluationCase]
    }

    struct GateCase: Encodable {
        var caseID: String
        var candidate: Double
        var baseline: Double
        var regressed: Bool

        enum CodingKeys: String, CodingKey {
            case candidate, baseline, regressed
            case caseID = "case_id"
        }
    }

    struct Gate: Encodable {
        var gateID: String
        var label: String
        var candidateVersion: Int
        var baselineVersion: Int
        var runs: Int
        var status: String
        var judge: String?
        var candidateMean: Double?
        var baselineMean: Double?
        var cases: [GateCase]
        var reason: String?

        enum CodingKeys: String, CodingKey {
            case label, runs, status, judge, cases, reason
            case gateID = "gate_id"
            case candidateVersion = "candidate_version"
            case baselineVersion = "baseline_version"
            case candidateMean = "candidate_mean"
            case baselineMean = "baseline_mean"
        }

        init(_ view: PersonaGateView) {
            gateID = PersonaDTO.id(view.id)
            label = view.label
            candidateVersion = view.candidateVersion
            baselineVersion = view.baselineVersion
            runs = view.runs
            status = view.status
            judge = view.judge
            candidateMean = view.candidateMean
            baselineMean = view.baselineMean
            cases = (view.cases ?? []).map { GateCase(caseID: $0.caseID, candidate: $0.candidate, baseline: $0.baseline, regressed: $0.regressed) }
            reason = view.reason
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(gateID, forKey: .gateID)
            try container.encode(label, forKey: .label)
            try container.encode(candidateVersion, forKey: .candidateVersion)
            try container.encode(baselineVersion, forKey: .baselineVersion)
            try container.encode(runs, forKey: .runs)
            try container.encode(status, forKey: .status)
            try container.encode(judge, forKey: .judge)
            try container.encode(candidateMean, forKey: .candidateMean)
            try container.encode(baselineMean, forKey: .baselineMean)
            try container.encode(cases, forKey: .cases)
            try container.encode(reason, forKey: .reason)
        }
    }
}

extension PersonaGateView {
    /// The view of a gate from its events: started, and decided or failed if it has been.
    init(started: PersonaGateStarted, decided: PersonaGateDecided?, failed: PersonaGateFailed?) {
        let status = decided.map { $0.passed ? "passed" : "refused" } ?? (failed == nil ? "running" : "failed")
        self.init(
            id: started.gateID, personaID: started.personaID, ownerID: started.ownerID, label: started.label, candidateVersion: started.candidateVersion,
            baselineVersion: started.baselineVersion, runs: started.runs, status: status, judge: decided?.judge, candidateMean: decided?.candidateMean,
            baselineMean: decided?.baselineMean, cases: decided?.cases, reason: decided?.reason ?? failed?.error, startedAt: started.startedAt,
            decidedAt: decided?.decidedAt ?? failed?.failedAt)
    }
}
