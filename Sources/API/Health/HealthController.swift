import Foundation
import Hummingbird
import Prometheus
import Synchronization

/// `/health` (each dependency with its status and latency), `/live` (the process answers),
/// `/ready` (may this instance take traffic) and `/metrics` (Prometheus text). None needs a token.
public struct HealthController<Context: RequestContext>: Sendable {
    let checks: [HealthCheck]
    let readiness: @Sendable () async -> Readiness
    let registry: PrometheusCollectorRegistry
    let timeout: Duration

    public struct Readiness: Sendable, Codable {
        public var ready: Bool
        public var reason: String?
        public init(ready: Bool, reason: String? = nil) {
            self.ready = ready
            self.reason = reason
        }
    }

    struct DependencyStatus: Codable, Sendable {
        var status: String
        var latencyMs: Double
        var critical: Bool
        var error: String?

        enum CodingKeys: String, CodingKey {
            case status, critical, error
            case latencyMs = "latency_ms"
        }
    }

    struct HealthReport: Codable, Sendable {
        /// `ok`, `degraded` (a non-critical dependency is down) or `down`.
        var status: String
        var checks: [String: DependencyStatus]
    }

    public init(
        checks: [HealthCheck], registry: PrometheusCollectorRegistry, timeout: Duration = .seconds(2),
        readiness: @escaping @Sendable () async -> Readiness
    ) {
        self.checks = checks
        self.registry = registry
        self.timeout = timeout
        self.readiness = readiness
    }

    public func addRoutes(to router: Router<Context>) {
        router.get("health") { _, _ in try await self.health() }
        // Liveness: the process answers HTTP. No dependency is asked, so an orchestrator never
        // restarts a healthy process because Postgres blinked (that is what /ready is for).
        router.get("live") { _, _ in Response(status: .noContent) }
        router.get("ready") { _, _ in try await self.ready() }
        router.get("metrics") { _, _ in self.metrics() }
    }

    func health() async throws -> Response {
        let results = await withTaskGroup(of: (String, DependencyStatus).self) { group in
            for check in checks {
                group.addTask { (check.name, await self.run(check)) }
            }
            var all: [String: DependencyStatus] = [:]
            for await (name, status) in group { all[name] = status }
            return all
        }
        let criticalDown = results.values.contains { $0.critical && $0.status != "ok" }
        let anyDown = results.values.contains { $0.status != "ok" }
        let report = HealthReport(status: criticalDown ? "down" : anyDown ? "degraded" : "ok", checks: results)
        return try JSONResponse.make(report, status: criticalDown ? .serviceUnavailable : .ok)
    }

    func ready() async throws -> Response {
        let readiness = await readiness()
        return try JSONResponse.make(readiness, status: readiness.ready ? .ok : .serviceUnavailable)
    }

    func metrics() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }

    private func run(_ check: HealthCheck) async -> DependencyStatus {
        let clock = ContinuousClock()
        let start = clock.now
        // A race the check cannot hold up: a task group would wait for a check that ignores
        // cancellation (a pool waiting for a connection to a stopped server), so /health would
        // answer late exactly when it matters. The check runs on its own and is cancelled.
        let first = Mutex<CheckedContinuation<String?, Never>?>(nil)
        let outcome: String? = await withCheckedContinuation { continuation in
            first.withLock { $0 = continuation }
            let finish: @Sendable (String?) -> Void = { result in first.withLock { $0.take() }?.resume(returning: result) }
            let work = Task {
                do {
                    try await check.check()
                    finish(nil)
                } catch {
                    finish(String(describing: error))
                }
            }
            Task {
                try? await Task.sleep(for: timeout)
                finish("no answer within \(timeout)")
                work.cancel()
            }
        }
        let elapsed = start.duration(to: clock.now)
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return DependencyStatus(
            status: outcome == nil ? "ok" : "down", latencyMs: (ms * 100).rounded() / 100, critical: check.critical,
            error: outcome)
    }
}

enum JSONResponse {
    static func make<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
