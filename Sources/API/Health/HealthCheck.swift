/// One dependency `/health` reports on. `check` throws when the dependency does not answer.
public struct HealthCheck: Sendable {
    public let name: String
    /// A dependency without which the service cannot take traffic (Postgres); the others degrade it.
    public let critical: Bool
    public let check: @Sendable () async throws -> Void

    public init(name: String, critical: Bool, check: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.critical = critical
        self.check = check
    }
}
