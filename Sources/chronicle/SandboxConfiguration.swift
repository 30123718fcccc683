import Adapters
import ArgumentParser
import Events
import Foundation
import Logging

/// The sandbox's settings, from the environment (see the README's table).
struct SandboxConfiguration {
    var settings: SandboxSettings
    var maxTimeoutSeconds: Int
    var maxCodeBytes: Int

    /// The runner starts its warm helpers at once, so only processes with workers make one.
    func makeRunner(logger: Logger) -> ProcessSandboxRunner {
        ProcessSandboxRunner(settings: settings, logger: logger)
    }

    static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) throws -> SandboxConfiguration {
        let values = EnvironmentValues(env)
        let defaults = SandboxLimits()
        let maxTimeout = try values.integer("CHRONICLE_SANDBOX_MAX_TIMEOUT_SECONDS", 30, 1...300)
        let limits = SandboxLimits(
            timeoutSeconds: try values.integer("CHRONICLE_SANDBOX_TIMEOUT_SECONDS", defaults.timeoutSeconds, 1...maxTimeout),
            cpuSeconds: try values.integer("CHRONICLE_SANDBOX_CPU_SECONDS", defaults.cpuSeconds, 1...3600),
            memoryBytes: Int64(try values.integer("CHRONICLE_SANDBOX_MEMORY_MIB", Int(defaults.memoryBytes >> 20), 64...65536)) << 20,
            fileBytes: Int64(try values.integer("CHRONICLE_SANDBOX_FILE_MIB", Int(defaults.fileBytes >> 20), 1...65536)) << 20,
            openFiles: try values.integer("CHRONICLE_SANDBOX_OPEN_FILES", defaults.openFiles, 16...65536),
            processes: try values.integer("CHRONICLE_SANDBOX_PROCESSES", defaults.processes, 4...4096),
            outputBytes: try values.integer("CHRONICLE_SANDBOX_OUTPUT_KIB", defaults.outputBytes >> 10, 1...65536) << 10,
            workspaceBytes: Int64(try values.integer("CHRONICLE_SANDBOX_WORKSPACE_MIB", Int(defaults.workspaceBytes >> 20), 1...65536)) << 20)
        let python = env["CHRONICLE_SANDBOX_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/bin/python3"
        guard python.hasPrefix("/") else { throw ValidationError("CHRONICLE_SANDBOX_PYTHON must be an absolute path") }
        let settings = SandboxSettings(
            helper: env["CHRONICLE_SANDBOX_HELPER"].flatMap { $0.isEmpty ? nil : $0 } ?? SandboxSettings.helperBesideExecutable(),
            python: python, limits: limits, concurrency: try values.integer("CHRONICLE_SANDBOX_CONCURRENCY", 2, 1...256),
            warm: try values.integer("CHRONICLE_SANDBOX_WARM", 2, 0...64))
        return SandboxConfiguration(
            settings: settings, maxTimeoutSeconds: maxTimeout,
            maxCodeBytes: try values.integer("CHRONICLE_SANDBOX_MAX_CODE_KIB", 64, 1...4096) << 10)
    }
}

/// Typed reads of configuration variables, failing with the variable's name and its range.
struct EnvironmentValues {
    let env: [String: String]

    init(_ env: [String: String]) {
        self.env = env
    }

    func integer(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
        guard let text = env[name], !text.isEmpty else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw ValidationError("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}
