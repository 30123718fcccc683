import Commands
import Events
import Foundation
import Hummingbird
import Projections

/// The Personas routes under `/api/v1/personas`. Commands and renders read the persona's own
/// streams (never a read model), so a render by label follows a moved label at once and an old
/// version stays renderable by number. Another owner's persona answers 404.
public struct PersonasController: Sendable {
    public struct Settings: Sendable {
        public var gate: PersonaReleaseDecider.GatePolicy
        /// How long moving a gated label waits for the gate's verdict before answering 202.
        public var gateWait: Duration
        public var readYourWritesTimeout: Duration

        public init(gate: PersonaReleaseDecider.GatePolicy = .init(), gateWait: Duration = .seconds(20), readYourWritesTimeout: Duration = .seconds(5)) {
            self.gate = gate
            self.gateWait = gateWait
            self.readYourWritesTimeout = readYourWritesTimeout
        }
    }

    let personas: CommandHandler<PersonaDecider>
    let releases: CommandHandler<PersonaReleaseDecider>
    let validations: CommandHandler<PersonaValidationDecider>
    /// The persona and release streams' states, checked against their versions on every read.
    let states: PersonaPrompts
    let rendering: PersonaRendering
    let queries: any PersonaQueries
    let hub: EventHub
    let settings: Settings

    public init(store: any EventStore, rendering: PersonaRendering, queries: any PersonaQueries, hub: EventHub, settings: Settings = .init()) {
        personas = CommandHandler(store: store)
        releases = CommandHandler(store: store)
        validations = CommandHandler(store: store)
        states = PersonaPrompts(store: store, rendering: rendering)
        self.rendering = rendering
        self.queries = queries
        self.hub = hub
        self.settings = settings
    }

    public func addRoutes(to group: RouterGroup<ChronicleRequestContext>) {
        group.post(use: create)
        group.get(use: list)
        group.get(":id", use: show)
        group.put(":id", use: revise)
        group.delete(":id", use: delete)
        group.get(":id/versions/:version", use: showVersion)
        group.get(":id/render", use: renderFromQuery)
        group.post(":id/render", use: renderFromBody)
        group.put(":id/labels/:label", use: moveLabel)
        group.put(":id/evaluation-set", use: freezeEvaluationSet)
        group.get(":id/evaluation-set", use: showEvaluationSet)
        group.get(":id/gates/:gate_id", use: showGate)
        group.post(":id/validate", use: validate)
        group.get(":id/validations", use: listValidations)
        group.get(":id/validations/:validation_id", use: showValidation)
    }

    static let personaNotFound = Problem(.notFound, code: "persona.not_found", detail: "no such persona")

    // MARK: Personas

    @Sendable func create(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let definition = try await Self.definition(request, context: context)
        let command = try CommandContext.from(request, context: context)
        let personaID = command.derivedID("persona")
        let result = try await personas.handle(
            .create(personaID: personaID, ownerID: principal.userID, definition: definition, limits: rendering.limits, now: command.now),
            on: PersonaDecider.streamID(personaID), context: command)
        guard let latest = result.state.latest else { throw Self.personaNotFound }
        return try Reply.json(
            PersonaDTO.Persona(id: personaID, version: latest, latest: latest.number, labels: [:]), status: .created,
            location: "/api/v1/personas/\(PersonaDTO.id(personaID))", version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func revise(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let ifMatch = try Reply.ifMatch(request)
        _ = try await owned(personaID, principal)
        let definition = try await Self.definition(request, context: context)
        let command = try CommandContext.from(request, context: context)
        let result = try await personas.handle(
            .revise(definition: definition, limits: rendering.limits, now: command.now), on: PersonaDecider.streamID(personaID), context: command,
            ifMatch: ifMatch)
        let (release, _) = try await states.releases.load(PersonaReleaseDecider.streamID(personaID).description)
        guard let latest = result.state.latest else { throw Self.personaNotFound }
        return try Reply.json(
            PersonaDTO.Persona(id: personaID, version: latest, latest: latest.number, labels: release.labels), status: .ok, version: result.streamVersion,
            position: result.append?.checkpoint, context: context)
    }

    @Sendable func delete(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let ifMatch = try Reply.ifMatch(request)
        _ = try await owned(personaID, principal)
        let command = try CommandContext.from(request, context: context)
        let result = try await personas.handle(.delete(now: command.now), on: PersonaDecider.streamID(personaID), context: command, ifMatch: ifMatch)
        return Response(status: .noContent, headers: [.eTag: "\"\(result.streamVersion)\""])
    }

    @Sendable func list(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let (page, pageSize) = try Reply.paging(request)
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForPersonas)
        let found = try await queries.personas(owner: principal.isAdmin ? nil : principal.userID, page: page, pageSize: pageSize)
        return try Reply.json(
            Paged(found, PersonaDTO.Summary.init),
            status: .ok, context: context)
    }

    @Sendable func show(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let (state, streamVersion) = try await ownedWithVersion(personaID, principal)
        let (release, _) = try await states.releases.load(PersonaReleaseDecider.streamID(personaID).description)
        guard let latest = state.latest else { throw Self.personaNotFound }
        return try Reply.json(
            PersonaDTO.Persona(id: personaID, version: latest, latest: latest.number, labels: release.labels), status: .ok, version: streamVersion,
            context: context)
    }

    @Sendable func showVersion(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let state = try await owned(personaID, principal)
        guard let text = context.parameters.get("version"), let number = Int(text), let version = state.version(number) else {
            throw Problem(.notFound, code: "persona.version_not_found", detail: "the persona has no such version (latest is \(state.versions.count))")
        }
        let (release, _) = try await states.releases.load(PersonaReleaseDecider.streamID(personaID).description)
        return try Reply.json(PersonaDTO.Persona(id: personaID, version: version, latest: state.versions.count, labels: release.labels), status: .ok, context: context)
    }

    // MARK: Rendering

    /// `?label=` or `?version=` (else the latest), and `var=name=value` per variable (strings).
    @Sendable func renderFromQuery(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var variables: [String: JSONValue] = [:]
        for raw in query[values: "var"] {
            let pair = raw.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pair.count == 2, !pair[0].isEmpty else {
                throw Problem(.badRequest, code: "request.invalid_variable", detail: "each var is name=value, e.g. ?var=topic=fractions")
            }
            variables[String(pair[0])] = .string(String(pair[1]))
        }
        let version = try query.get("version").map { text -> Int in
            guard let number = Int(text) else { throw Problem(.badRequest, code: "request.invalid_version", detail: "version is a whole number") }
            return number
        }
        return try await render(request, context: context, label: query.get("label").map { String($0) }, version: version, variables: variables)
    }

    @Sendable func renderFromBody(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let body = try await request.decode(as: PersonaDTO.Render.self, context: context)
        return try await render(request, context: context, label: body.label, version: body.version, variables: body.contextVariables ?? [:])
    }

    func render(_ request: Request, context: ChronicleRequestContext, label: String?, version: Int?, variables: [String: JSONValue]) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        // Both streams' versions in one query: a render costs one round trip while nothing moved.
        let (state, _, release) = try await states.current(personaID)
        guard state.exists, let owner = state.ownerID, principal.mayAccess(owner: owner) else { throw Self.personaNotFound }
        let chosen = try await select(personaID, state, label: label, version: version, release: release)
        let text = try rendering.render(chosen, variables: variables)
        return try Reply.json(
            PersonaDTO.Rendered(renderedPrompt: text, personaVersion: chosen.number, label: label, templateHash: chosen.templateHash), status: .ok,
            context: context)
    }

    /// The version a label points at (read from the release stream now, never from a cache), a
    /// version by number, or the latest.
    func select(
        _ personaID: UUID, _ state: PersonaDecider.State, label: String?, version: Int?, release known: PersonaReleaseDecider.State? = nil
    ) async throws -> PersonaDecider.Version {
        if label != nil, version != nil {
            throw Problem(.badRequest, code: "request.ambiguous_version", detail: "give a label or a version, not both")
        }
        if let label {
            let release: PersonaReleaseDecider.State
            if let known { release = known } else { (release, _) = try await states.releases.load(PersonaReleaseDecider.streamID(personaID).description) }
            guard let number = release.labels[label], let chosen = state.version(number) else {
                throw Problem(.notFound, code: "persona.label_not_found", detail: "the persona has no label '\(label.prefix(64))'")
            }
            return chosen
        }
        if let version {
            guard let chosen = state.version(version) else {
                throw Problem(.notFound, code: "persona.version_not_found", detail: "the persona has no version \(version) (latest is \(state.versions.count))")
            }
            return chosen
        }
        guard let latest = state.latest else { throw Self.personaNotFound }
        return latest
    }

    // MARK: Labels, the evaluation set and gates

    @Sendable func moveLabel(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let label = context.parameters.get("label") ?? ""
        let state = try await owned(personaID, principal)
        let body = try await request.decode(as: PersonaDTO.MoveLabel.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let gateID = command.derivedID("persona-gate")
        let stream = PersonaReleaseDecider.streamID(personaID)
        let result = try await releases.handle(
            .moveLabel(.init(
                personaID: personaID, ownerID: state.ownerID ?? principal.userID, label: label, version: body.version, latestVersion: state.versions.count,
                policy: settings.gate, gateID: gateID, now: command.now)),
            on: stream, context: command)
        guard let status = result.state.gates[gateID] else {
            return try Reply.json(
                PersonaDTO.LabelMoved(label: label, version: result.state.labels[label] ?? body.version, gate: nil), status: .ok, version: result.streamVersion,
                position: result.append?.checkpoint, context: context)
        }
        let gate = status == .running ? try await awaitGate(gateID, on: stream, after: result.append?.checkpoint) : try await gateView(gateID, on: stream)
        return try gateAnswer(gate, personaID: personaID, context: context)
    }

    /// Waits (up to `gateWait`) on the hub for the gate's verdict.
    func awaitGate(_ gateID: UUID, on stream: StreamID, after checkpoint: Checkpoint?) async throws -> PersonaGateView {
        let subscription = hub.subscribe(HubFilter(streamID: stream.description), after: checkpoint)
        defer { subscription.cancel() }
        let deadline = ContinuousClock.now + settings.gateWait
        while ContinuousClock.now < deadline {
            switch try await subscription.next(timeout: deadline - ContinuousClock.now) {
            case .message(.event(let event)):
                guard [PersonaGateDecided.eventType, PersonaGateFailed.eventType].contains(event.eventType),
                    let ended = try? PersonaReleaseEvent.registry.decode(event, as: PersonaReleaseEvent.self)
                else { continue }
                switch ended {
                case .gateDecided(let decided) where decided.gateID == gateID: return try await gateView(gateID, on: stream)
                case .gateFailed(let failed) where failed.gateID == gateID: return try await gateView(gateID, on: stream)
                default: continue
                }
            case .message(.dropped), .ended:
                return try await gateView(gateID, on: stream)
            case .idle:
                continue
            }
        }
        return try await gateView(gateID, on: stream)
    }

    /// A gate as its stream tells it now.
    func gateView(_ gateID: UUID, on stream: StreamID) async throws -> PersonaGateView {
        var started: PersonaGateStarted?
        var decided: PersonaGateDecided?
        var failed: PersonaGateFailed?
        var version: Int64 = 1
        while true {
            let page = try await releases.store.readStream(stream.description, from: version, direction: .forward, limit: 500)
            for event in page {
                guard event.eventType.hasPrefix("PersonaGate") else { continue }
                switch try PersonaReleaseEvent.registry.decode(event, as: PersonaReleaseEvent.self) {
                case .gateStarted(let e) where e.gateID == gateID: started = e
                case .gateDecided(let e) where e.gateID == gateID: decided = e
                case .gateFailed(let e) where e.gateID == gateID: failed = e
                default: break
                }
            }
            if page.count < 500 { break }
            version = (page.last?.streamVersion ?? version) + 1
        }
        guard let started else { throw Problem(.notFound, code: "persona.gate_not_found", detail: "no such gate") }
        return PersonaGateView(started: started, decided: decided, failed: failed)
    }

    /// 200 when the gate passed (the label moved), 409 naming the regressed cases when it
    /// refused, 502 when it failed, 202 while it still runs.
    func gateAnswer(_ gate: PersonaGateView, personaID: UUID, context: ChronicleRequestContext) throws -> Response {
        let dto = PersonaDTO.Gate(gate)
        let location = "/api/v1/personas/\(PersonaDTO.id(personaID))/gates/\(PersonaDTO.id(gate.id))"
        switch gate.status {
        case "passed":
            return try Reply.json(PersonaDTO.LabelMoved(label: gate.label, version: gate.candidateVersion, gate: dto), status: .ok, context: context)
        case "refused":
            let regressed = (gate.cases ?? []).filter(\.regressed).map(\.caseID)
            throw Problem(
                .conflict, code: "persona.gate_refused",
                detail: "the regression gate refused to move '\(gate.label)' to version \(gate.candidateVersion): \(gate.reason ?? "")",
                extensions: [
                    "gate_id": .string(dto.gateID), "regressed_cases": .array(regressed.map(JSONValue.string)),
                    "candidate_mean": gate.candidateMean.map(JSONValue.number) ?? .null, "baseline_mean": gate.baselineMean.map(JSONValue.number) ?? .null,
                    "cases": .array((gate.cases ?? []).map {
                        .object(["case_id": .string($0.caseID), "candidate": .number($0.candidate), "baseline": .number($0.baseline), "regressed": .bool($0.regressed)])
                    }),
                ])
        case "failed":
            throw Problem(
                .badGateway, code: "persona.gate_failed", detail: "the regression gate could not decide: \(gate.reason ?? "")",
                extensions: ["gate_id": .string(dto.gateID)])
        default:
            return try Reply.json(PersonaDTO.LabelMoved(label: gate.label, version: gate.baselineVersion, gate: dto), status: .accepted, location: location, context: context)
        }
    }

    @Sendable func showGate(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        _ = try await owned(personaID, principal)
        let gateID = try Reply.pathID(context, "gate_id", missing: Problem(.notFound, code: "persona.gate_not_found", detail: "no such gate"))
        let gate = try await gateView(gateID, on: PersonaReleaseDecider.streamID(personaID))
        return try Reply.json(PersonaDTO.Gate(gate), status: .ok, context: context)
    }

    @Sendable func freezeEvaluationSet(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        _ = try await owned(personaID, principal)
        let body = try await request.decode(as: PersonaDTO.EvaluationSet.self, context: context)
        let command = try CommandContext.from(request, context: context)
        let cases = body.cases.map { PersonaEvaluationCase(caseID: $0.id, input: $0.input, reference: $0.reference, variables: $0.variables) }
        let result = try await releases.handle(
            .freezeEvaluationSet(personaID: personaID, cases: cases, now: command.now), on: PersonaReleaseDecider.streamID(personaID), context: command)
        return try Reply.json(body, status: .ok, version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func showEvaluationSet(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        _ = try await owned(personaID, principal)
        let (release, _) = try await states.releases.load(PersonaReleaseDecider.streamID(personaID).description)
        let cases = release.evaluationSet.map { PersonaDTO.EvaluationCase(id: $0.caseID, input: $0.input, reference: $0.reference, variables: $0.variables) }
        return try Reply.json(PersonaDTO.EvaluationSet(cases: cases), status: .ok, context: context)
    }

    // MARK: Validations

    @Sendable func validate(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.requireWrite()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let state = try await owned(personaID, principal)
        let body = try await request.decode(as: PersonaDTO.Validate.self, context: context)
        let chosen = try await select(personaID, state, label: body.label, version: body.version)
        let command = try CommandContext.from(request, context: context)
        let validationID = command.derivedID("persona-validation")
        let result = try await validations.handle(
            .request(PersonaValidationRequested(
                validationID: validationID, personaID: personaID, ownerID: state.ownerID ?? principal.userID, version: chosen.number,
                responses: body.responses, requestedAt: command.now)),
            on: PersonaValidationDecider.streamID(validationID), context: command)
        return try Reply.json(
            PersonaDTO.ValidationAccepted(validationID: PersonaDTO.id(validationID), personaVersion: chosen.number, status: result.state.status.rawValue),
            status: .accepted, location: "/api/v1/personas/\(PersonaDTO.id(personaID))/validations/\(PersonaDTO.id(validationID))",
            version: result.streamVersion, position: result.append?.checkpoint, context: context)
    }

    @Sendable func showValidation(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        let missing = Problem(.notFound, code: "persona.validation_not_found", detail: "no such validation")
        let validationID = try Reply.pathID(context, "validation_id", missing: missing)
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForPersonas)
        if let view = try await queries.validation(validationID) {
            guard view.personaID == personaID, principal.mayAccess(owner: view.ownerID) else { throw missing }
            return try Reply.json(PersonaDTO.Validation(view), status: .ok, context: context)
        }
        // Accepted but not yet in the read model: its stream says it exists (pending).
        let (state, _) = try await validations.load(PersonaValidationDecider.streamID(validationID).description)
        guard let requested = state.request, requested.personaID == personaID, principal.mayAccess(owner: requested.ownerID) else { throw missing }
        return try Reply.json(PersonaDTO.Validation(requested), status: .ok, context: context)
    }

    /// A persona's validations, newest first; `?version=` for one version's history.
    @Sendable func listValidations(_ request: Request, context: ChronicleRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let personaID = try Reply.pathID(context, "id", missing: Self.personaNotFound)
        _ = try await owned(personaID, principal)
        let version = try request.uri.queryParameters.get("version").map { _ in try Reply.integer(request, "version", default: 1, range: 1...1_000_000) }
        try await Reply.waitIfAsked(request, timeout: settings.readYourWritesTimeout, queries.waitForPersonas)
        let found = try await queries.validations(persona: personaID, version: version, limit: 100)
        return try Reply.json(PersonaDTO.Validations(items: found.map(PersonaDTO.Validation.init)), status: .ok, context: context)
    }

    // MARK: Helpers

    /// The persona from its stream, if the principal may use it; 404 otherwise (absent, deleted
    /// or another owner's).
    func owned(_ id: UUID, _ principal: Principal) async throws -> PersonaDecider.State {
        try await ownedWithVersion(id, principal).0
    }

    func ownedWithVersion(_ id: UUID, _ principal: Principal) async throws -> (PersonaDecider.State, Int64) {
        let (state, version) = try await states.personas.load(PersonaDecider.streamID(id).description)
        guard state.exists, let owner = state.ownerID, principal.mayAccess(owner: owner) else { throw Self.personaNotFound }
        return (state, version)
    }

    /// The body as a persona definition: checked against the persona schema first, so a 422
    /// lists every failing pointer rather than the first decoding error.
    static func definition(_ request: Request, context: ChronicleRequestContext) async throws -> PersonaDefinition {
        let document = try await request.decode(as: JSONValue.self, context: context)
        let broken = PersonaRules.schema.validate(document)
        guard broken.isEmpty else {
            throw Problem(
                .unprocessableContent, code: "persona.invalid", detail: "the persona breaks \(broken.count) rule\(broken.count == 1 ? "" : "s")",
                extensions: Problem.errors(broken))
        }
        return try EventCoding.decode(PersonaDefinition.self, from: EventCoding.encode(document))
    }

}

extension PersonasController {
    /// Its routes, under `/api/v1/personas`.
    public var mount: RouteMount { RouteMount("personas", add: { addRoutes(to: $0) }) }
}
