import API
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Prometheus
import Testing

/// Routes through `app.test(.router)` with fake dependencies: no servers needed.
@Suite struct RouteTests {
    struct Down: Error, CustomStringConvertible { var description: String { "refused" } }

    static func app(
        checks: [HealthCheck] = [HealthCheck(name: "postgres", critical: true) {}],
        ready: Bool = true
    ) -> some ApplicationProtocol {
        let registry = PrometheusCollectorRegistry()
        registry.makeCounter(name: "chronicle_test_total").increment()
        return buildApplication(
            server: ServerSettings(),
            dependencies: AppDependencies(healthChecks: checks, registry: registry) {
                .init(ready: ready, reason: ready ? nil : "migrations pending")
            },
            logger: Logger(label: "test"))
    }

    static func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
    }

    @Test func healthReportsEachDependencyWithStatusAndLatency() async throws {
        let app = Self.app(checks: [
            HealthCheck(name: "postgres", critical: true) {},
            HealthCheck(name: "redis", critical: false) {},
        ])
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["status"] as? String == "ok")
                let checks = try #require(body["checks"] as? [String: [String: Any]])
                #expect(checks["postgres"]?["status"] as? String == "ok")
                #expect(checks["redis"]?["latency_ms"] is Double || checks["redis"]?["latency_ms"] is Int)
            }
        }
    }

    @Test func aNonCriticalDependencyDownDegradesButStaysUp() async throws {
        let app = Self.app(checks: [
            HealthCheck(name: "postgres", critical: true) {},
            HealthCheck(name: "rabbitmq", critical: false) { throw Down() },
        ])
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let body = try Self.json(response.body)
                #expect(body["status"] as? String == "degraded")
                let checks = try #require(body["checks"] as? [String: [String: Any]])
                #expect(checks["rabbitmq"]?["status"] as? String == "down")
                #expect(checks["rabbitmq"]?["error"] as? String == "refused")
            }
        }
    }

    @Test func aCriticalDependencyDownAnswers503() async throws {
        let app = Self.app(checks: [HealthCheck(name: "postgres", critical: true) { throw Down() }])
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try Self.json(response.body)
                #expect(body["status"] as? String == "down")
            }
        }
    }

    @Test func aHangingCheckIsReportedDownAfterTheTimeout() async throws {
        let app = Self.app(checks: [
            HealthCheck(name: "postgres", critical: true) {},
            HealthCheck(name: "redis", critical: false) { try await Task.sleep(for: .seconds(60)) },
        ])
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                let checks = try #require(try Self.json(response.body)["checks"] as? [String: [String: Any]])
                #expect(checks["redis"]?["status"] as? String == "down")
            }
        }
    }

    /// A check that ignores cancellation (a pool waiting for a connection to a stopped server)
    /// must not hold /health past its timeout: a fault suite once saw no answer inside a 6 s
    /// Postgres outage.
    @Test func aCheckThatIgnoresCancellationDoesNotDelayTheAnswer() async throws {
        let app = Self.app(checks: [
            HealthCheck(name: "postgres", critical: true) {},
            HealthCheck(name: "redis", critical: false) {
                // 8 s whatever happens: a sleep that cancellation does not end.
                let until = ContinuousClock.now.advanced(by: .seconds(8))
                while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(50)) }
            },
        ])
        try await app.test(.router) { client in
            let asked = ContinuousClock.now
            try await client.execute(uri: "/health", method: .get) { response in
                let checks = try #require(try Self.json(response.body)["checks"] as? [String: [String: Any]])
                #expect(checks["redis"]?["status"] as? String == "down")
            }
            let waited = ContinuousClock.now - asked
            #expect(waited < .seconds(6), "/health answered after \(waited) with a 2 s timeout")
        }
    }

    @Test func readyFollowsReadiness() async throws {
        try await Self.app(ready: true).test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
        }
        try await Self.app(ready: false).test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try Self.json(response.body)
                #expect(body["reason"] as? String == "migrations pending")
            }
        }
    }

    @Test func metricsArePrometheusText() async throws {
        try await Self.app().test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                #expect(String(buffer: response.body).contains("chronicle_test_total 1"))
            }
        }
    }

    @Test func anUnknownRouteIsAProblemDocument() async throws {
        try await Self.app().test(.router) { client in
            try await client.execute(uri: "/no/such/route", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/problem+json")
                let body = try Self.json(response.body)
                #expect(body["status"] as? Int == 404)
                #expect(body["code"] as? String == "route.not_found")
                #expect(body["instance"] as? String == "/no/such/route")
                #expect(body["type"] as? String == "/problems/route.not_found")
                #expect(String(buffer: response.body).contains(#""type":"/problems/route.not_found""#), "slashes escaped")
            }
        }
    }

    @Test func theOpenAPIDocumentIsServedAndListsEveryRoute() async throws {
        try await Self.app().test(.router) { client in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.hasPrefix("openapi: 3.1"))
                for path in ["/health:", "/ready:", "/metrics:", "/openapi.yaml:"] {
                    #expect(text.contains("\n  \(path)"), "\(path) missing from the document")
                }
            }
        }
    }
}
