import Adapters
import Commands
import Events
import Foundation
import Testing

/// schemathesis (PyPI, installed by eventstore/dev/install.sh) against the live server with a
/// valid token: no 5xx, and no response that breaks the OpenAPI document, over at least 5,000
/// requests, every tenth JSON body of them over the 1 MiB limit (Support/schemathesis_hooks.py).
@Suite struct SchemathesisTests {
    static var binary: URL {
        let environment = ProcessInfo.processInfo.environment
        if let venv = environment["CHRONICLE_VENV"], !venv.isEmpty { return URL(fileURLWithPath: venv).appendingPathComponent("bin/schemathesis") }
        let data = environment["CHRONICLE_DATA"].map { URL(fileURLWithPath: $0) } ?? TestServers.root.appendingPathComponent(".chronicle")
        return data.appendingPathComponent("venv/bin/schemathesis")
    }

    /// Examples per operation for a total of about 6,000 cases (at least 5,000 must reach the API).
    static var examplesPerOperation: Int {
        let document = (try? String(contentsOf: TestServers.root.appendingPathComponent("Sources/API/openapi.yaml"), encoding: .utf8)) ?? ""
        let operations = document.split(separator: "\n").filter { $0.hasPrefix("      operationId: ") }.count
        return max(100, 6000 / max(1, operations - 1))
    }

    /// The server's own count of answered requests by status class, from /metrics.
    static func served(_ client: HTTPTestClient) async throws -> (total: Int, serverErrors: Int, tooLarge: Int) {
        let text = try await client.send("GET", "/metrics").text
        var total = 0
        var errors = 0
        var tooLarge = 0
        for line in text.split(separator: "\n") where line.hasPrefix("hb_requests{") && line.contains("/api/v1") {
            let count = Int(Double(line.split(separator: " ").last ?? "") ?? 0)
            total += count
            if line.contains("http_response_status_code=\"5") { errors += count }
            if line.contains("http_response_status_code=\"413\"") { tooLarge += count }
        }
        return (total, errors, tooLarge)
    }

    @Test func fuzzingTheAPIWithAValidTokenFindsNoServerErrorAndNoBreachOfTheDocument() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary.path) else {
            Issue.record("schemathesis is not installed at \(Self.binary.path): run eventstore/dev/install.sh")
            return
        }
        try await TestServers.withDatabase { database in
            // An enterprise admin (no per-user limit) and no execute limit: otherwise most
            // requests would be 429s and the logic behind them untested.
            try await AgentsEndToEndTests.withServer(database, env: ["CHRONICLE_RATE_LIMIT_EXECUTE": "0"]) { member, _ in
                let client = try await member.signIn(database, roles: [.admin], tier: .enterprise)
                let process = Process()
                process.executableURL = Self.binary
                process.arguments = [
                    "run", "\(client.base)/openapi.yaml", "-H", "Authorization: Bearer \(client.token!)",
                    "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
                    // About 6,000 cases in all, whatever the number of operations (40 now): the
                    // run's time grows with the total, and CI's budget is for the total.
                    "--max-examples", "\(Self.examplesPerOperation)", "--workers", "1", "--request-timeout", "15", "--no-color", "--phases", "coverage,fuzzing",
                    // The log as a live stream answers an admin by streaming until the client
                    // leaves: every example would be a 15 s timeout. EventStreamTests cover it.
                    "--exclude-operation-id", "streamEvents",
                ]
                var env = ProcessInfo.processInfo.environment
                env["SCHEMATHESIS_TELEMETRY"] = "false"
                env["SCHEMATHESIS_HOOKS"] = TestServers.root.appendingPathComponent("Tests/IntegrationTests/Support/schemathesis_hooks.py").path
                process.environment = env
                let output = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID()).txt")
                FileManager.default.createFile(atPath: output.path, contents: nil)
                let handle = try FileHandle(forWritingTo: output)
                process.standardOutput = handle
                process.standardError = handle
                try process.run()
                // 6,000 cases took 400 to 800 s on a busy 2-core machine; CI's limit is far off.
                let deadline = ContinuousClock.now.advanced(by: .seconds(1200))
                while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
                await CLIProcess.stop(process)
                try handle.close()
                let report = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                let summary = report.components(separatedBy: "SUMMARY").last ?? report
                print("schemathesis summary:\n\(summary)")
                #expect(process.terminationReason == .exit && !report.contains("Interrupted"), "schemathesis did not run to its end")
                #expect(process.terminationStatus == 0, "schemathesis found problems:\n\(report.suffix(6000))")
                let generated = report.split(separator: "\n").first { $0.contains(" generated,") }
                    .flatMap { Int($0.trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") } ?? 0
                #expect(generated >= 5000, "schemathesis generated only \(generated) test cases")
                let (total, serverErrors, tooLarge) = try await Self.served(client)
                print("schemathesis: the server answered \(total) requests under /api/v1, \(serverErrors) of them 5xx, \(tooLarge) of them 413")
                #expect(total >= 5000, "only \(total) requests reached the API")
                #expect(serverErrors == 0)
                #expect(tooLarge >= 50, "only \(tooLarge) bodies over the limit were answered 413")
            }
        }
    }
}
