import Events
import Foundation

/// A persona's release stream (`personarelease-<id>`): where its labels point, its frozen
/// evaluation set, and the regression gates that guard gated labels. One gate runs at a time; a
/// gate that passes moves its label in the same append as its verdict.
public enum PersonaReleaseDecider: Decider {
    /// When a label move must pass the regression gate.
    public struct GatePolicy: Sendable, Equatable {
        public var labels: Set<String>
        public var runs: Int
        public var maxMeanDrop: Double
        public var maxCaseDrop: Double

        public init(labels: Set<String> = ["production"], runs: Int = 3, maxMeanDrop: Double = 0.5, maxCaseDrop: Double = 2) {
            self.labels = labels
            self.runs = runs
            self.maxMeanDrop = maxMeanDrop
            self.maxCaseDrop = maxCaseDrop
        }
    }

    public struct MoveLabel: Sendable, Equatable {
        public var personaID: UUID
        public var ownerID: String
        public var label: String
        public var version: Int
        /// The persona's latest version, looked up by the caller.
        public var latestVersion: Int
        public var policy: GatePolicy
        /// The id a gate gets, if one starts (derived from the command).
        public var gateID: UUID
        public var now: Date

        public init(personaID: UUID, ownerID: String, label: String, version: Int, latestVersion: Int, policy: GatePolicy, gateID: UUID, now: Date) {
            self.personaID = personaID
            self.ownerID = ownerID
            self.label = label
            self.version = version
            self.latestVersion = latestVersion
            self.policy = policy
            self.gateID = gateID
            self.now = now
        }
    }

    public enum Command: Sendable, Equatable {
        case freezeEvaluationSet(personaID: UUID, cases: [PersonaEvaluationCase], now: Date)
        case moveLabel(MoveLabel)
        case decideGate(PersonaGateDecided)
        case failGate(PersonaGateFailed)
    }

    public enum GateStatus: String, Sendable, Codable { case running, passed, refused, failed }

    public struct State: Sendable, Equatable {
        public var labels: [String: Int] = [:]
        public var evaluationSet: [PersonaEvaluationCase] = []
        public var openGate: PersonaGateStarted?
        public var gates: [UUID: GateStatus] = [:]
    }

    public static let category = "personarelease"
    public static let initialState = State()
    public static let maxCases = 100
    static let labelPattern = Set("abcdefghijklmnopqrstuvwxyz0123456789-_.")

    public static func streamID(_ personaID: UUID) -> StreamID { StreamID(category: category, id: personaID) }

    public static func decide(_ command: Command, state: State) throws -> [PersonaReleaseEvent] {
        switch command {
        case .freezeEvaluationSet(let personaID, let cases, let now):
            try checkEvaluationSet(cases)
            return [.evaluationSetFrozen(PersonaEvaluationSetFrozen(personaID: personaID, cases: cases, frozenAt: now))]
        case .moveLabel(let move):
            guard (1...64).contains(move.label.count), move.label.allSatisfy({ labelPattern.contains($0) }) else {
                throw DomainError(.invalid, code: .personaLabelInvalid, "a label is 1 to 64 of a-z, 0-9, '-', '_' and '.'")
            }
            guard (1...move.latestVersion).contains(move.version) else {
                throw DomainError(.notFound, code: .personaVersionNotFound, "the persona has no version \(move.version) (latest is \(move.latestVersion))")
            }
            let current = state.labels[move.label]
            if current == move.version { return [] }
            if let current, move.policy.labels.contains(move.label), !state.evaluationSet.isEmpty {
                if let open = state.openGate {
                    throw DomainError(
                        .conflict, code: .personaGateRunning,
                        "a regression gate (\(open.gateID.uuidString.lowercased())) is still deciding whether '\(open.label)' may move to version \(open.candidateVersion)")
                }
                return [.gateStarted(PersonaGateStarted(
                    gateID: move.gateID, personaID: move.personaID, ownerID: move.ownerID, label: move.label, candidateVersion: move.version,
                    baselineVersion: current, cases: state.evaluationSet, runs: move.policy.runs, maxMeanDrop: move.policy.maxMeanDrop,
                    maxCaseDrop: move.policy.maxCaseDrop, startedAt: move.now))]
            }
            return [.labelMoved(PersonaLabelMoved(
                personaID: move.personaID, label: move.label, version: move.version, previousVersion: current, gateID: nil, movedAt: move.now))]
        case .decideGate(let verdict):
            let gate = try open(verdict.gateID, state)
            var events: [PersonaReleaseEvent] = [.gateDecided(verdict)]
            if verdict.passed {
                events.append(.labelMoved(PersonaLabelMoved(
                    personaID: gate.personaID, label: gate.label, version: gate.candidateVersion, previousVersion: state.labels[gate.label],
                    gateID: gate.gateID, movedAt: verdict.decidedAt)))
            }
            return events
        case .failGate(let failure):
            _ = try open(failure.gateID, state)
            return [.gateFailed(failure)]
        }
    }

    public static func evolve(_ state: State, _ event: PersonaReleaseEvent) -> State {
        var state = state
        switch event {
        case .evaluationSetFrozen(let frozen): state.evaluationSet = frozen.cases
        case .labelMoved(let moved): state.labels[moved.label] = moved.version
        case .gateStarted(let started):
            state.openGate = started
            state.gates[started.gateID] = .running
        case .gateDecided(let decided):
            state.openGate = nil
            state.gates[decided.gateID] = decided.passed ? .passed : .refused
        case .gateFailed(let failed):
            state.openGate = nil
            state.gates[failed.gateID] = .failed
        }
        return state
    }

    static func open(_ gateID: UUID, _ state: State) throws -> PersonaGateStarted {
        guard let gate = state.openGate, gate.gateID == gateID else {
            throw DomainError(.conflict, code: .personaGateNotOpen, "gate \(gateID.uuidString.lowercased()) is not running")
        }
        return gate
    }

    static func checkEvaluationSet(_ cases: [PersonaEvaluationCase]) throws {
        var broken: [JSONSchema.Violation] = []
        if cases.count > maxCases { broken.append(.init(pointer: "/cases", message: "must have at most \(maxCases) cases")) }
        var seen: Set<String> = []
        for (index, item) in cases.enumerated() {
            if !TextLimit(characters: 1...64).admits(item.caseID) { broken.append(.init(pointer: "/cases/\(index)/id", message: "must be 1 to 64 characters")) }
            if !seen.insert(item.caseID).inserted { broken.append(.init(pointer: "/cases/\(index)/id", message: "repeats case '\(item.caseID)'")) }
            if !TextLimit(characters: 1...4000).admits(item.input) { broken.append(.init(pointer: "/cases/\(index)/input", message: "must be 1 to 4000 characters")) }
            if let reference = item.reference, !TextLimit(characters: 1...8000).admits(reference) {
                broken.append(.init(pointer: "/cases/\(index)/reference", message: "must be 1 to 8000 characters"))
            }
        }
        guard broken.isEmpty else {
            throw DomainError(.invalid, code: .personaEvaluationSetInvalid, broken.map(\.description).joined(separator: "; "), violations: broken)
        }
    }
}

/// One validation (stream `personavalidation-<id>`): requested, then completed or failed, once.
public enum PersonaValidationDecider: Decider {
    public enum Command: Sendable, Equatable {
        case request(PersonaValidationRequested)
        case complete(PersonaValidationCompleted)
        case fail(PersonaValidationFailed)
    }

    public enum Status: String, Sendable, Codable { case absent, pending, completed, failed }

    public struct State: Sendable, Equatable {
        public var status: Status = .absent
        public var request: PersonaValidationRequested?
    }

    public static let category = "personavalidation"
    public static let initialState = State()
    public static let maxResponses = 20

    public static func streamID(_ validationID: UUID) -> StreamID { StreamID(category: category, id: validationID) }

    public static func decide(_ command: Command, state: State) throws -> [PersonaValidationEvent] {
        switch command {
        case .request(let request):
            guard state.status == .absent else { throw DomainError(.conflict, code: .personaValidationExists, "the validation already exists") }
            var broken: [JSONSchema.Violation] = []
            if !(1...maxResponses).contains(request.responses.count) {
                broken.append(.init(pointer: "/responses", message: "must hold 1 to \(maxResponses) responses"))
            }
            for (index, response) in request.responses.enumerated() where !TextLimit(characters: 1...8000).admits(response) {
                broken.append(.init(pointer: "/responses/\(index)", message: "must be 1 to 8000 characters"))
            }
            guard broken.isEmpty else {
                throw DomainError(.invalid, code: .personaValidationInvalid, broken.map(\.description).joined(separator: "; "), violations: broken)
            }
            return [.requested(request)]
        case .complete(let completed):
            try requirePending(state)
            return [.completed(completed)]
        case .fail(let failed):
            try requirePending(state)
            return [.failed(failed)]
        }
    }

    public static func evolve(_ state: State, _ event: PersonaValidationEvent) -> State {
        var state = state
        switch event {
        case .requested(let requested):
            state.status = .pending
            state.request = requested
        case .completed: state.status = .completed
        case .failed: state.status = .failed
        }
        return state
    }

    static func requirePending(_ state: State) throws {
        guard state.status != .absent else { throw DomainError(.notFound, code: .personaValidationNotFound, "no such validation") }
        guard state.status == .pending else {
            throw DomainError(.conflict, code: .personaValidationEnded, "the validation already ended (\(state.status.rawValue))")
        }
    }
}
