import Commands
import Events
import Foundation
import Logging
import PostgresNIO
import Projections

/// `PersonaQueries` over `personas` and `persona_validations` (read through their views, so a
/// rebuild's swap is invisible).
public struct PersonaReadModels: PersonaQueries {
    let client: PostgresClient
    let store: PostgresProjectionStore<PersonasProjection>
    let logger: Logger

    public init(client: PostgresClient, store: PostgresProjectionStore<PersonasProjection>, logger: Logger) {
        self.client = client
        self.store = store
        self.logger = logger
    }

    public func personas(owner: String?, page: Int, pageSize: Int) async throws -> Page<PersonaSummary> {
        try await readModel(orIfAbsent: Page(items: [], page: page, pageSize: pageSize, totalCount: 0)) {
            var items: [PersonaSummary] = []
            var total = 0
            let rows = try await client.query("""
                SELECT persona_id, owner_id, name, role, latest_version, labels::text, created_at, updated_at
                FROM personas WHERE NOT deleted AND (\(owner)::text IS NULL OR owner_id = \(owner))
                ORDER BY created_at, persona_id LIMIT \(pageSize) OFFSET \((page - 1) * pageSize)
                """, logger: logger)
            for try await row in rows.decode((UUID, String, String, String, Int32, String, Date, Date).self) {
                let labels = (try? JSONDecoder().decode([String: Int].self, from: PostgresText.decodeJSON(Data(row.5.utf8)))) ?? [:]
                items.append(PersonaSummary(
                    id: row.0, ownerID: row.1, name: PostgresText.decode(row.2), role: PostgresText.decode(row.3), latestVersion: Int(row.4), labels: labels,
                    createdAt: row.6, updatedAt: row.7))
            }
            let counted = try await client.query(
                "SELECT count(*) FROM personas WHERE NOT deleted AND (\(owner)::text IS NULL OR owner_id = \(owner))", logger: logger)
            for try await count in counted.decode(Int64.self) { total = Int(count) }
            return Page(items: items, page: page, pageSize: pageSize, totalCount: total)
        }
    }

    typealias ValidationRow = (UUID, UUID, String, Int32, Int32, String, String?, Double?, Int32?, String?, String?, String?, Date, Date?)

    static let validationColumns = """
        validation_id, persona_id, owner_id, version, responses, status, judge, average, repairs, results::text, error, raw_reply,
        requested_at, finished_at
        """

    static func validation(_ row: ValidationRow) -> PersonaValidationView {
        let results = row.9.flatMap { try? EventCoding.decode([PersonaJudgement].self, from: PostgresText.decodeJSON(Data($0.utf8))) }
        return PersonaValidationView(
            id: row.0, personaID: row.1, ownerID: row.2, version: Int(row.3), responses: Int(row.4), status: row.5, judge: row.6.map(PostgresText.decode),
            average: row.7, repairs: row.8.map(Int.init), results: results, error: row.10.map(PostgresText.decode), rawReply: row.11.map(PostgresText.decode),
            requestedAt: row.12, finishedAt: row.13)
    }

    public func validation(_ id: UUID) async throws -> PersonaValidationView? {
        try await readModel(orIfAbsent: nil) {
            let rows = try await client.query(
                "SELECT \(unescaped: Self.validationColumns) FROM persona_validations WHERE validation_id = \(id)", logger: logger)
            for try await row in rows.decode(ValidationRow.self) { return Self.validation(row) }
            return nil
        }
    }

    public func validations(persona: UUID, version: Int?, limit: Int) async throws -> [PersonaValidationView] {
        try await readModel(orIfAbsent: []) {
            let rows = try await client.query("""
                SELECT \(unescaped: Self.validationColumns) FROM persona_validations
                WHERE persona_id = \(persona) AND (\(version.map(Int32.init))::integer IS NULL OR version = \(version.map(Int32.init)))
                ORDER BY requested_at DESC, validation_id LIMIT \(Int64(limit))
                """, logger: logger)
            var views: [PersonaValidationView] = []
            for try await row in rows.decode(ValidationRow.self) { views.append(Self.validation(row)) }
            return views
        }
    }

    public func waitForPersonas(_ checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        try await ReadYourWrites.wait(for: store, toReach: checkpoint, timeout: timeout)
    }
}
