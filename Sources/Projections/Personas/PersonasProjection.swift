import Commands
import Events
import Foundation

/// Personas per owner, their validations and their regression gates (Postgres): `personas` for
/// `GET /personas`, `persona_validations` for a validation and a version's history, and
/// `persona_gates` for a gate's verdict. Renders never read this model: they read the persona's
/// streams, so a moved label is seen at once.
public struct PersonasProjection: PostgresProjection {
    public let name = "personas"
    let registry: EventRegistry

    public init(registry: EventRegistry = PersonaEvent.registry) {
        self.registry = registry
    }

    public var tables: [ReadModelTable] {
        [
            ReadModelTable(name: "personas", ddl: """
                CREATE TABLE IF NOT EXISTS {personas} (
                    persona_id     uuid PRIMARY KEY,
                    owner_id       text NOT NULL,
                    name           text NOT NULL,
                    role           text NOT NULL,
                    latest_version integer NOT NULL,
                    labels         jsonb NOT NULL DEFAULT '{}'::jsonb,
                    deleted        boolean NOT NULL DEFAULT false,
                    created_at     timestamptz NOT NULL,
                    updated_at     timestamptz NOT NULL
                );
                CREATE INDEX IF NOT EXISTS {personas}_owner_idx ON {personas} (owner_id, created_at, persona_id)
                """),
            ReadModelTable(name: "persona_validations", ddl: """
                CREATE TABLE IF NOT EXISTS {persona_validations} (
                    validation_id uuid PRIMARY KEY,
                    persona_id    uuid NOT NULL,
                    owner_id      text NOT NULL,
                    version       integer NOT NULL,
                    responses     integer NOT NULL,
                    status        text NOT NULL,
                    judge         text,
                    average       double precision,
                    repairs       integer,
                    results       jsonb,
                    error         text,
                    raw_reply     text,
                    requested_at  timestamptz NOT NULL,
                    finished_at   timestamptz
                );
                CREATE INDEX IF NOT EXISTS {persona_validations}_persona_idx ON {persona_validations} (persona_id, version, requested_at DESC)
                """),
            ReadModelTable(name: "persona_gates", ddl: """
                CREATE TABLE IF NOT EXISTS {persona_gates} (
                    gate_id           uuid PRIMARY KEY,
                    persona_id        uuid NOT NULL,
                    owner_id          text NOT NULL,
                    label             text NOT NULL,
                    candidate_version integer NOT NULL,
                    baseline_version  integer NOT NULL,
                    runs              integer NOT NULL,
                    status            text NOT NULL,
                    judge             text,
                    candidate_mean    double precision,
                    baseline_mean     double precision,
                    cases             jsonb,
                    reason            text,
                    started_at        timestamptz NOT NULL,
                    decided_at        timestamptz
                );
                CREATE INDEX IF NOT EXISTS {persona_gates}_persona_idx ON {persona_gates} (persona_id, started_at DESC)
                """),
        ]
    }

    static let categories = ["\(PersonaDecider.category)-", "\(PersonaReleaseDecider.category)-", "\(PersonaValidationDecider.category)-"]

    public func statements(for event: RecordedEvent) throws -> [SQLStatement] {
        guard Self.categories.contains(where: event.streamID.hasPrefix), registry.registrations[event.eventType] != nil else { return [] }
        let payload = try registry.decode(event)
        if let event = PersonaEvent(payload: payload) { return persona(event) }
        if let event = PersonaReleaseEvent(payload: payload) { return try release(event) }
        if let event = PersonaValidationEvent(payload: payload) { return try validation(event) }
        return []
    }

    func persona(_ event: PersonaEvent) -> [SQLStatement] {
        switch event {
        case .created(let created):
            return [SQLStatement("""
                INSERT INTO {personas} (persona_id, owner_id, name, role, latest_version, created_at, updated_at)
                VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (persona_id) DO NOTHING
                """, [.uuid(created.personaID), .text(created.ownerID), .text(created.definition.name), .text(created.definition.role),
                      .timestamp(created.createdAt)])]
        case .revised(let revised):
            return [SQLStatement(
                "UPDATE {personas} SET name = $2, role = $3, latest_version = $4, updated_at = $5 WHERE persona_id = $1",
                [.uuid(revised.personaID), .text(revised.definition.name), .text(revised.definition.role), .int(Int64(revised.version)),
                 .timestamp(revised.revisedAt)])]
        case .deleted(let deleted):
            return [SQLStatement(
                "UPDATE {personas} SET deleted = true, updated_at = $2 WHERE persona_id = $1", [.uuid(deleted.personaID), .timestamp(deleted.deletedAt)])]
        }
    }

    func release(_ event: PersonaReleaseEvent) throws -> [SQLStatement] {
        switch event {
        case .evaluationSetFrozen:
            return []
        case .labelMoved(let moved):
            return [SQLStatement(
                "UPDATE {personas} SET labels = labels || jsonb_build_object($2::text, $3::integer) WHERE persona_id = $1",
                [.uuid(moved.personaID), .text(moved.label), .int(Int64(moved.version))])]
        case .gateStarted(let started):
            return [SQLStatement("""
                INSERT INTO {persona_gates} (gate_id, persona_id, owner_id, label, candidate_version, baseline_version, runs, status, started_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8) ON CONFLICT (gate_id) DO NOTHING
                """, [.uuid(started.gateID), .uuid(started.personaID), .text(started.ownerID), .text(started.label),
                      .int(Int64(started.candidateVersion)), .int(Int64(started.baselineVersion)), .int(Int64(started.runs)), .timestamp(started.startedAt)])]
        case .gateDecided(let decided):
            return [SQLStatement("""
                UPDATE {persona_gates} SET status = $2, judge = $3, candidate_mean = $4, baseline_mean = $5, cases = $6::jsonb, reason = $7,
                       decided_at = $8 WHERE gate_id = $1
                """, [.uuid(decided.gateID), .text(decided.passed ? "passed" : "refused"), .text(decided.judge), .double(decided.candidateMean),
                      .double(decided.baselineMean), .json(try EventCoding.encode(decided.cases)), .text(decided.reason), .timestamp(decided.decidedAt)])]
        case .gateFailed(let failed):
            return [SQLStatement(
                "UPDATE {persona_gates} SET status = 'failed', reason = $2, decided_at = $3 WHERE gate_id = $1",
                [.uuid(failed.gateID), .text(failed.error), .timestamp(failed.failedAt)])]
        }
    }

    func validation(_ event: PersonaValidationEvent) throws -> [SQLStatement] {
        switch event {
        case .requested(let requested):
            return [SQLStatement("""
                INSERT INTO {persona_validations} (validation_id, persona_id, owner_id, version, responses, status, requested_at)
                VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (validation_id) DO NOTHING
                """, [.uuid(requested.validationID), .uuid(requested.personaID), .text(requested.ownerID), .int(Int64(requested.version)),
                      .int(Int64(requested.responses.count)), .timestamp(requested.requestedAt)])]
        case .completed(let completed):
            return [SQLStatement("""
                UPDATE {persona_validations} SET status = 'completed', judge = $2, average = $3, repairs = $4, results = $5::jsonb, finished_at = $6
                WHERE validation_id = $1
                """, [.uuid(completed.validationID), .text(completed.judge), .double(completed.average), .int(Int64(completed.repairs)),
                      .json(try EventCoding.encode(completed.results)), .timestamp(completed.completedAt)])]
        case .failed(let failed):
            return [SQLStatement(
                "UPDATE {persona_validations} SET status = 'failed', error = $2, raw_reply = $3, finished_at = $4 WHERE validation_id = $1",
                [.uuid(failed.validationID), .text(failed.error), failed.rawReply.map(SQLValue.text) ?? .null, .timestamp(failed.failedAt)])]
        }
    }
}

/// A persona in the list.
public struct PersonaSummary: Sendable, Equatable {
    public var id: UUID
    public var ownerID: String
    public var name: String
    public var role: String
    public var latestVersion: Int
    public var labels: [String: Int]
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: UUID, ownerID: String, name: String, role: String, latestVersion: Int, labels: [String: Int], createdAt: Date, updatedAt: Date) {
        self.id = id
        self.ownerID = ownerID
        self.name = name
        self.role = role
        self.latestVersion = latestVersion
        self.labels = labels
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A validation as the read model holds it.
public struct PersonaValidationView: Sendable, Equatable {
    public var id: UUID
    public var personaID: UUID
    public var ownerID: String
    public var version: Int
    public var responses: Int
    public var status: String
    public var judge: String?
    public var average: Double?
    public var repairs: Int?
    public var results: [PersonaJudgement]?
    public var error: String?
    public var rawReply: String?
    public var requestedAt: Date
    public var finishedAt: Date?

    public init(
        id: UUID, personaID: UUID, ownerID: String, version: Int, responses: Int, status: String, judge: String?, average: Double?, repairs: Int?,
        results: [PersonaJudgement]?, error: String?, rawReply: String?, requestedAt: Date, finishedAt: Date?
    ) {
        self.id = id
        self.personaID = personaID
        self.ownerID = ownerID
        self.version = version
        self.responses = responses
        self.status = status
        self.judge = judge
        self.average = average
        self.repairs = repairs
        self.results = results
        self.error = error
        self.rawReply = rawReply
        self.requestedAt = requestedAt
        self.finishedAt = finishedAt
    }
}

/// A regression gate as the read model holds it.
public struct PersonaGateView: Sendable, Equatable {
    public var id: UUID
    public var personaID: UUID
    public var ownerID: String
    public var label: String
    public var candidateVersion: Int
    public var baselineVersion: Int
    public var runs: Int
    public var status: String
    public var judge: String?
    public var candidateMean: Double?
    public var baselineMean: Double?
    public var cases: [PersonaGateCaseResult]?
    public var reason: String?
    public var startedAt: Date
    public var decidedAt: Date?

    public init(
        id: UUID, personaID: UUID, ownerID: String, label: String, candidateVersion: Int, baselineVersion: Int, runs: Int, status: String, judge: String?,
        candidateMean: Double?, baselineMean: Double?, cases: [PersonaGateCaseResult]?, reason: String?, startedAt: Date, decidedAt: Date?
    ) {
        self.id = id
        self.personaID = personaID
        self.ownerID = ownerID
        self.label = label
        self.candidateVersion = candidateVersion
        self.baselineVersion = baselineVersion
        self.runs = runs
        self.status = status
        self.judge = judge
        self.candidateMean = candidateMean
        self.baselineMean = baselineMean
        self.cases = cases
        self.reason = reason
        self.startedAt = startedAt
        self.decidedAt = decidedAt
    }
}

/// The read side of the Personas module.
public protocol PersonaQueries: Sendable {
    /// A page of personas (not deleted), oldest first; `owner` nil: every owner's.
    func personas(owner: String?, page: Int, pageSize: Int) async throws -> Page<PersonaSummary>
    func validation(_ id: UUID) async throws -> PersonaValidationView?
    /// A persona's validations, newest first, of one version or all.
    func validations(persona: UUID, version: Int?, limit: Int) async throws -> [PersonaValidationView]
    /// Waits (bounded) until the read model has passed `checkpoint`; false on timeout.
    func waitForPersonas(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool
}
