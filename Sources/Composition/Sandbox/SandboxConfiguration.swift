import Adapters
import Commands
import Events
import Foundation
import Logging

/// The Sandbox module's configuration section.
struct SandboxConfiguration {
    var settings: SandboxSettings
    var maxTimeoutSeconds: Int
    var maxCodeBytes: Int

    static let settings: [SettingDescription] = [
        .init("chronicle.sandbox.helper", "chronicle-sandbox beside the executable", "The isolation helper"),
        .init("chronicle.sandbox.python", "/usr/bin/python3", "The interpreter (an absolute path)"),
        .init("chronicle.sandbox.concurrency", "2", "Runs at once in this process (1 to 256)"),
        .init("chronicle.sandbox.warm", "2", "Helpers kept started, waiting for code (0 to 64)"),
        .init("chronicle.sandbox.max_timeout_seconds", "30", "The longest wall time a request may ask (1 to 300)"),
        .init("chronicle.sandbox.timeout_seconds", "5", "Wall time when a request sets none"),
        .init("chronicle.sandbox.cpu_seconds", "10", "CPU time of a run"),
        .init("chronicle.sandbox.memory_mib", "512", "Address space of a run (64 to 65536)"),
        .init("chronicle.sandbox.file_mib", "32", "Largest file a run may write"),
        .init("chronicle.sandbox.open_files", "256", "Open files of a run"),
        .init("chronicle.sandbox.processes", "64", "Processes of a run"),
        .init("chronicle.sandbox.output_kib", "1024", "Output kept per stream"),
        .init("chronicle.sandbox.workspace_mib", "64", "The run's writable workspace"),
        .init("chronicle.sandbox.max_code_kib", "64", "Largest program accepted (1 to 4096)"),
    ]

    /// The runner starts its warm helpers at once, so only processes with workers make one.
    func makeRunner(logger: Logger) -> ProcessSandboxRunner {
        ProcessSandboxRunner(settings: settings, logger: logger)
    }

    init(_ values: Settings) throws {
        let defaults = SandboxLimits()
        let maxTimeout = try values.integer("chronicle.sandbox.max_timeout_seconds", default: 30, range: 1...300)
        let limits = SandboxLimits(
            timeoutSeconds: try values.integer("chronicle.sandbox.timeout_seconds", default: defaults.timeoutSeconds, range: 1...maxTimeout),
            cpuSeconds: try values.integer("chronicle.sandbox.cpu_seconds", default: defaults.cpuSeconds, range: 1...3600),
            memoryBytes: Int64(try values.integer("chronicle.sandbox.memory_mib", default: Int(defaults.memoryBytes >> 20), range: 64...65536)) << 20,
            fileBytes: Int64(try values.integer("chronicle.sandbox.file_mib", default: Int(defaults.fileBytes >> 20), range: 1...65536)) << 20,
            openFiles: try values.integer("chronicle.sandbox.open_files", default: defaults.openFiles, range: 16...65536),
            processes: try values.integer("chronicle.sandbox.processes", default: defaults.processes, range: 4...4096),
            outputBytes: try values.integer("chronicle.sandbox.output_kib", default: defaults.outputBytes >> 10, range: 1...65536) << 10,
            workspaceBytes: Int64(try values.integer("chronicle.sandbox.workspace_mib", default: Int(defaults.workspaceBytes >> 20), range: 1...65536)) << 20)
        settings = SandboxSettings(
            helper: values.text("chronicle.sandbox.helper") ?? SandboxSettings.helperBesideExecutable(),
            python: try values.path("chronicle.sandbox.python", default: "/usr/bin/python3"), limits: limits,
            concurrency: try values.integer("chronicle.sandbox.concurrency", default: 2, range: 1...256),
            warm: try values.integer("chronicle.sandbox.warm", default: 2, range: 0...64))
        maxTimeoutSeconds = maxTimeout
        maxCodeBytes = try values.integer("chronicle.sandbox.max_code_kib", default: 64, range: 1...4096) << 10
    }
}
