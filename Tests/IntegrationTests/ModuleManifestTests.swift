import API
import Adapters
import Commands
import Composition
import Events
import Foundation
import Prometheus
import Testing

/// What a module declares in its manifest is what the application runs: every projection is
/// listed and rebuildable by the CLI, every route is served (and documented), every work
/// contract has a worker with a health check.
@Suite struct ModuleManifestTests {
    /// Some history for every module, so rebuilds replay real events.
    static func seed(_ database: ChronicleDatabase) async throws {
        let agents = CommandHandler<AgentDecider>(store: database.eventStore)
        let agent = UUID()
        let created = try await agents.handle(
            .create(CreateAgent(
                agentID: agent, ownerID: "o", name: "A", instructions: "i", settings: AgentModelSettings(model: "offline", temperature: 0.5, maxTokens: 10),
                now: Date())),
            on: StreamID(category: AgentDecider.category, id: agent), context: CommandContext(userID: "o"))
        let execution = UUID()
        _ = try await CommandHandler<AgentExecutionDecider>(store: database.eventStore).handle(
            .request(RequestAgentExecution(
                executionID: execution, agentID: agent, agent: created.state, input: "hi", timeoutSeconds: 30, maxAttempts: 2, now: Date())),
            on: AgentExecutionDecider.streamID(execution), context: CommandContext(userID: "o"))
        let run = UUID()
        _ = try await CommandHandler<CodeExecutionDecider>(store: database.eventStore).handle(
            .request(RequestCodeExecution(executionID: run, ownerID: "o", language: "python", code: "print(1)", limits: .init(), now: Date())),
            on: CodeExecutionDecider.streamID(run), context: CommandContext(userID: "o"))
    }

    @Test func everyDeclaredProjectionIsListedAndRebuildableByTheCLI() async throws {
        try await TestServers.withDatabase { database in
            try await Self.seed(database)
            let url = CLITests.url(database)
            let declared = Modules.all.flatMap(\.projections).map(\.name)
            #expect(Set(declared).count == declared.count, "projection names are unique")
            let list = try await CLIProcess.run(["projections", "list", "--database-url", url])
            #expect(list.status == 0, "\(list.stderr)")
            let listed = Set(list.stdout.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) })
            for name in declared {
                #expect(listed.contains(name), "\(name) is declared but not listed")
                let rebuilt = try await CLIProcess.run(["projections", "rebuild", name, "--database-url", url], timeout: .seconds(120))
                #expect(rebuilt.status == 0 && rebuilt.stdout.contains("rebuild: \(name) generation"), "\(name): \(rebuilt.stdout) \(rebuilt.stderr)")
            }
        }
    }

    @Test func everyRouteOfEveryModuleIsServedAndDocumentedAndEveryWorkContractHasAWorker() async throws {
        try await TestServers.withDatabase { database in
            let platform = try TestServers.platform(database)
            let app = try await ChronicleApp.assemble(
                platform: platform, settings: Settings(environment: ["CHRONICLE_SANDBOX_WARM": "0"]), roles: Set(Role.allCases))
            let dependencies = ChronicleApp.dependencies(app, registry: PrometheusCollectorRegistry(), services: []) { .init(ready: true) }
            let routed = Set(buildRouter(dependencies).routes.map { route -> String in
                let path = route.path.description.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
                return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
            })
            #expect(routed.sorted() == (try Self.documentedOperations()).sorted())
            let exchanges = app.workers.map(\.exchange)
            #expect(exchanges.sorted() == Modules.contracts.workExchanges, "every work contract has one worker")
            for declared in app.workers {
                #expect(dependencies.healthChecks.contains { $0.name == "worker.\(declared.worker.name)" })
            }
            // Every module's events are in the registry the store and the relay decode with.
            for module in Modules.all {
                for registry in module.events {
                    for type in registry.registrations.keys { #expect(EventRegistry.chronicle.registrations[type] != nil, "\(type)") }
                }
            }
        }
    }

    @Test func everySettingAModuleDeclaresIsInTheReadme() throws {
        let readme = try String(contentsOf: TestServers.root.appendingPathComponent("README.md"), encoding: .utf8)
        let declared = ChronicleApp.settings + Modules.all.flatMap(\.settings)
        for setting in declared {
            let variable = setting.variable
            // The README groups families in one row: `CHRONICLE_RATE_LIMIT_FREE`, `_PRO`, ...
            let parts = variable.split(separator: "_")
            let suffixes = (2..<parts.count).map { "`_" + parts[$0...].joined(separator: "_") + "`" }
            if !readme.contains("`\(variable)`") && !suffixes.contains(where: readme.contains) {
                Issue.record("\(variable) is not in the README table")
            }
        }
    }

    /// Every operation the OpenAPI document declares, as "METHOD /path".
    static func documentedOperations() throws -> Set<String> {
        var operations = Set<String>()
        var path: String?
        let document = try String(contentsOf: TestServers.root.appendingPathComponent("Sources/API/openapi.yaml"), encoding: .utf8)
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if !line.hasPrefix(" ") {
                path = nil
            } else if let path, let method = ["get", "post", "patch", "delete", "put"].first(where: { line == "    \($0):" }) {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }

    /// A command that takes an `Idempotency-Key` can answer 422 (the key was used for another
    /// command), so its operation documents 422 (schemathesis found three that did not).
    @Test func everyOperationTakingAnIdempotencyKeyDocuments422() throws {
        let document = try String(contentsOf: TestServers.root.appendingPathComponent("Sources/API/openapi.yaml"), encoding: .utf8)
        var path = "", operation: String?, takesKey = false, documents422 = false
        var missing: [String] = []
        func close() {
            if let operation, takesKey, !documents422 { missing.append(operation) }
            operation = nil
            takesKey = false
            documents422 = false
        }
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                close()
                path = String(line.dropFirst(2).dropLast())
            } else if !line.hasPrefix(" ") {
                close()
            } else if let method = ["get", "post", "patch", "delete", "put"].first(where: { line == "    \($0):" }) {
                close()
                operation = "\(method.uppercased()) \(path)"
            } else if line.contains("#/components/parameters/IdempotencyKey") {
                takesKey = true
            } else if line.trimmingCharacters(in: .whitespaces) == "'422':" {
                documents422 = true
            }
        }
        close()
        #expect(missing.isEmpty, "operations taking an Idempotency-Key without a 422: \(missing)")
    }
}
