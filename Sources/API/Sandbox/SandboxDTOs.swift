import Commands
import Events
import Foundation
import Projections

/// The sandbox's JSON shapes (snake_case, as in openapi.yaml).
enum SandboxDTO {
    struct Execute: Decodable {
        var code: String
        var timeoutSeconds: Int?
        var language: String?

        enum CodingKeys: String, CodingKey {
            case code, language
            case timeoutSeconds = "timeout_seconds"
        }
    }

    struct Accepted: Codable {
        var executionID: String
        var status: String

        enum CodingKeys: String, CodingKey {
            case status
            case executionID = "execution_id"
        }
    }

    /// A run. `output` is stdout; `error` is the traceback of a failed run, or what ended it (the
    /// wall limit, another limit) followed by its stderr. Every key is always present.
    struct Execution: Codable, Equatable {
        var executionID: String
        var status: String
        var language: String
        var output: String?
        var stderr: String?
        var error: String?
        var exitCode: Int?
        var signal: Int?
        var limit: String?
        var outputTruncated: Bool
        var timeoutSeconds: Int
        var durationMs: Int?
        var cpuMs: Int?
        var peakMemoryBytes: Int64?
        var requestedAt: String
        var startedAt: String?
        var finishedAt: String?

        enum CodingKeys: String, CodingKey {
            case status, language, output, stderr, error, signal, limit
            case executionID = "execution_id"
            case exitCode = "exit_code"
            case outputTruncated = "output_truncated"
            case timeoutSeconds = "timeout_seconds"
            case durationMs = "duration_ms"
            case cpuMs = "cpu_ms"
            case peakMemoryBytes = "peak_memory_bytes"
            case requestedAt = "requested_at"
            case startedAt = "started_at"
            case finishedAt = "finished_at"
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(executionID, forKey: .executionID)
            try container.encode(status, forKey: .status)
            try container.encode(language, forKey: .language)
            try container.encode(output, forKey: .output)
            try container.encode(stderr, forKey: .stderr)
            try container.encode(error, forKey: .error)
            try container.encode(exitCode, forKey: .exitCode)
            try container.encode(signal, forKey: .signal)
            try container.encode(limit, forKey: .limit)
            try container.encode(outputTruncated, forKey: .outputTruncated)
            try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
            try container.encode(durationMs, forKey: .durationMs)
            try container.encode(cpuMs, forKey: .cpuMs)
            try container.encode(peakMemoryBytes, forKey: .peakMemoryBytes)
            try container.encode(requestedAt, forKey: .requestedAt)
            try container.encode(startedAt, forKey: .startedAt)
            try container.encode(finishedAt, forKey: .finishedAt)
        }

        init(_ view: CodeExecutionView) {
            executionID = view.id.uuidString.lowercased()
            status = view.status
            language = view.language
            output = view.stdout
            stderr = view.stderr
            let stderrText = (view.stderr ?? "").isEmpty ? nil : view.stderr
            switch view.status {
            case "completed", "pending", "running": error = nil
            case "failed": error = stderrText ?? view.error
            default: error = [view.error, stderrText].compactMap { $0 }.joined(separator: "\n\n")
            }
            exitCode = view.exitCode
            signal = view.signal
            limit = view.limit
            outputTruncated = (view.stdoutBytes ?? 0) > Int64((view.stdout ?? "").utf8.count) || (view.stderrBytes ?? 0) > Int64((view.stderr ?? "").utf8.count)
            timeoutSeconds = view.timeoutSeconds
            durationMs = view.durationMs
            cpuMs = view.cpuMs
            peakMemoryBytes = view.peakMemoryBytes
            requestedAt = Timestamp.format(view.requestedAt)
            startedAt = view.startedAt.map(Timestamp.format)
            finishedAt = view.finishedAt.map(Timestamp.format)
        }

        /// A run known only from its stream (not yet in the read model), as it was requested.
        init(_ requested: CodeExecutionRequested) {
            executionID = requested.executionID.uuidString.lowercased()
            status = CodeExecutionDecider.Status.pending.rawValue
            language = requested.language
            outputTruncated = false
            timeoutSeconds = requested.limits.timeoutSeconds
            requestedAt = Timestamp.format(requested.requestedAt)
        }
    }

    struct Health: Encodable {
        struct Pool: Encodable {
            var warm: Int
            var warmTarget: Int
            var running: Int
            var concurrency: Int
            var runs: Int
            var cgroup: Bool?

            enum CodingKeys: String, CodingKey {
                case warm, running, concurrency, runs, cgroup
                case warmTarget = "warm_target"
            }

            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(warm, forKey: .warm)
                try container.encode(warmTarget, forKey: .warmTarget)
                try container.encode(running, forKey: .running)
                try container.encode(concurrency, forKey: .concurrency)
                try container.encode(runs, forKey: .runs)
                try container.encode(cgroup, forKey: .cgroup)
            }
        }

        struct Host: Encodable {
            var cpus: Int
            var load1m: Double
            var cpuUsePercent: Double
            var memoryTotalBytes: Int64
            var memoryAvailableBytes: Int64
            var memoryUsePercent: Double

            enum CodingKeys: String, CodingKey {
                case cpus
                case load1m = "load_1m"
                case cpuUsePercent = "cpu_use_percent"
                case memoryTotalBytes = "memory_total_bytes"
                case memoryAvailableBytes = "memory_available_bytes"
                case memoryUsePercent = "memory_use_percent"
            }
        }

        /// `ok`, `degraded` (the runner reports a problem) or `no_workers` (this process runs no
        /// sandbox workers, so it has no pool to show).
        var status: String
        var problem: String?
        var pool: Pool?
        var host: Host

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(problem, forKey: .problem)
            try container.encode(pool, forKey: .pool)
            try container.encode(host, forKey: .host)
        }

        enum CodingKeys: String, CodingKey { case status, problem, pool, host }

        init(pool: SandboxHealth?, host: HostUsage) {
            status = pool == nil ? "no_workers" : pool?.problem == nil ? "ok" : "degraded"
            problem = pool?.problem
            self.pool = pool.map { Pool(
                warm: $0.warm, warmTarget: $0.warmTarget, running: $0.running, concurrency: $0.concurrency, runs: $0.runs, cgroup: $0.cgroup) }
            func percent(_ part: Double, _ whole: Double) -> Double { whole > 0 ? (part / whole * 1000).rounded() / 10 : 0 }
            self.host = Host(
                cpus: host.cpus, load1m: host.load1, cpuUsePercent: min(100, percent(host.load1, Double(host.cpus))),
                memoryTotalBytes: host.memoryTotalBytes, memoryAvailableBytes: host.memoryAvailableBytes,
                memoryUsePercent: percent(Double(host.memoryTotalBytes - host.memoryAvailableBytes), Double(host.memoryTotalBytes)))
        }
    }
}
