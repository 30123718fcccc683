import API
import Adapters
import ArgumentParser
import CLISupport
import Commands
import Composition
import Events
import Foundation
import Workers

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Answer for the log: a stream's history and state, one request's events, agent runs replayed or forked, and the log verified.",
        subcommands: [
            StreamAudit.self, StateAudit.self, DiffAudit.self, CorrelationAudit.self, ReplayAudit.self, ForkAudit.self, VerifyAudit.self,
            CheckpointAudit.self,
        ])
}

/// `--version N` or `--at T` (a point of a stream), at most one.
struct PointOptions: ParsableArguments {
    @Option(help: "A version (0: before the first event)") var version: Int64?
    @Option(help: "An RFC 3339 time: the last event recorded at or before it") var at: String?

    func point(otherwise: StatePoint) throws -> StatePoint {
        switch (version, at) {
        case (nil, nil): return otherwise
        case (_?, _?): throw ValidationError("give --version or --at, not both")
        case (let version?, nil):
            guard version >= 0 else { throw ValidationError("--version must be 0 or more") }
            return .version(version)
        case (nil, let text?):
            guard let date = Timestamp.parse(text) else { throw ValidationError("--at must be an RFC 3339 time, e.g. 2026-11-30T14:02:00Z") }
            return .at(date)
        }
    }
}

/// The decider of a stream's category, or a usage error naming those there are.
func decider(of stream: String) throws -> AuditedDecider {
    guard let category = StreamID(stream)?.category, let decider = Modules.deciders[category] else {
        throw ValidationError("no decider folds streams like \(stream); categories: \(Modules.deciders.keys.sorted().joined(separator: ", "))")
    }
    return decider
}

/// A domain refusal (a version past the stream's end) as one line.
func refusing<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as DomainError {
        throw CLIError(error.message)
    }
}

struct StreamAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream", abstract: "A stream's history as JSON lines, each payload upcast, with who caused it.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The stream id, e.g. agent-<uuid>") var streamID: String
    @Option(name: .customLong("from-version"), help: "The first version") var fromVersion: Int64 = 1
    @Option(help: "At most this many events") var limit: Int = 1000

    func run() async throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        let logger = try connection.logger("chronicle.audit", default: .critical)
        try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            for event in try await database.eventStore.readStream(streamID, from: fromVersion, direction: .forward, limit: limit) {
                print(EventPrinter.line(event, upcast: true))
            }
        }
    }
}

struct StateAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state", abstract: "A stream's state as of a version or a time, folded by its own decider, as JSON.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The stream id, e.g. agent-<uuid>") var streamID: String
    @OptionGroup var point: PointOptions

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        let decider = try decider(of: streamID), point = try point.point(otherwise: .head)
        let folded = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            try await refusing { try await decider.fold(streamID, in: database.eventStore, to: point, registry: .chronicle) }
        }
        printJSON(folded.json)
    }
}

struct DiffAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "What changed in a stream's state between two points, leaf by leaf, as JSON.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The stream id, e.g. agent-<uuid>") var streamID: String
    @Option(name: .customLong("from-version")) var fromVersion: Int64?
    @Option(name: .customLong("from-at")) var fromAt: String?
    @Option(name: .customLong("to-version")) var toVersion: Int64?
    @Option(name: .customLong("to-at")) var toAt: String?

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        let decider = try decider(of: streamID)
        var from = PointOptions(), to = PointOptions()
        (from.version, from.at, to.version, to.at) = (fromVersion, fromAt, toVersion, toAt)
        let (start, end) = (try from.point(otherwise: .version(0)), try to.point(otherwise: .head))
        let diff = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            try await refusing {
                let before = try await decider.fold(streamID, in: database.eventStore, to: start, registry: .chronicle)
                let after = try await decider.fold(streamID, in: database.eventStore, to: end, registry: .chronicle)
                return AuditController.diff(before, after)
            }
        }
        printJSON(diff)
    }
}

struct CorrelationAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "correlation", abstract: "Every event one request caused (its X-Request-ID), across streams, as JSON lines.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The correlation id") var correlationID: String

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            var after: Int64 = 0
            while true {
                let page = try await database.eventStore.correlated(correlationID, after: after, limit: 1000)
                for event in page { print(EventPrinter.line(event, upcast: true)) }
                guard page.count == 1000, let last = page.last else { break }
                after = last.position
            }
        }
    }
}

/// An agent run's events, or a one-line refusal.
func runEvents(_ database: ChronicleDatabase, _ id: String) async throws -> [AgentExecutionEvent] {
    guard let uuid = UUID(uuidString: id) else { throw ValidationError("'\(id)' is not an execution id") }
    let events = try await database.eventStore.readStream(
        AgentExecutionDecider.streamID(uuid).description, from: 1, direction: .forward, limit: 100_000)
    guard !events.isEmpty else { throw CLIError("no execution \(id)") }
    return try events.map { try AgentExecutionEvent.registry.decode($0, as: AgentExecutionEvent.self) }
}

struct ReplayAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay an agent run through the worker code with its own recorded model answers (no network); JSON, exit 1 unless identical.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The execution id") var executionID: String

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        let report = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            do {
                return try await AgentRunReplay(logger: logger).replay(try await runEvents(database, executionID))
            } catch let error as AgentRunReplay.NotReplayable {
                throw CLIError(error.description)
            }
        }
        printJSON(report.json)
        if !report.identical { throw ExitCode(1) }
    }
}

struct ForkAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fork",
        abstract: "Fork an agent run from one of its model calls, with another model or other instructions: a new run the workers take up.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The execution id") var executionID: String
    @Option(name: .customLong("from-call"), help: "The model call (1-based, in the run's last attempt) to start from") var fromCall: Int = 1
    @Option(help: "Another model") var model: String?
    @Option(help: "Other instructions") var instructions: String?

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        let forked = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            let events = try await runEvents(database, executionID)
            guard case .requested(let origin)? = events.first else { throw CLIError("the run has no request") }
            let calls = events.lastAttemptCalls.calls
            let id = UUID()
            try await refusing {
                _ = try await CommandHandler<AgentExecutionDecider>(store: database.eventStore).handle(
                    .fork(ForkAgentExecution(
                        executionID: id, origin: origin, originCalls: calls, fromCall: fromCall, model: model, instructions: instructions,
                        now: Date())),
                    on: AgentExecutionDecider.streamID(id), context: CommandContext(userID: "system:cli", correlationID: "fork-\(id)"))
            }
            return (id, origin.agentID)
        }
        printJSON(.object([
            "execution_id": .string(forked.0.uuidString.lowercased()), "forked_from": .string(executionID.lowercased()),
            "from_call": .number(Double(fromCall)), "agent_id": .string(forked.1.uuidString.lowercased()), "status": .string("pending"),
        ]))
    }
}

/// The checkpoint key from the options or the environment.
struct AuditKeyOptions: ParsableArguments {
    @Option(name: .customLong("verify-key"), help: "Ed25519 public key in base64 (default: derived from $CHRONICLE_AUDIT_SIGNING_KEY)")
    var verifyKey: String?

    func key(signing: Bool) throws -> CheckpointKey? {
        do {
            if !signing, let verifyKey = verifyKey ?? Settings().text("chronicle.audit.verify_key") {
                return try CheckpointKey(publicKeyBase64: verifyKey)
            }
            return try Settings().text("chronicle.audit.signing_key", secret: true).map { try CheckpointKey(signingKeyBase64: $0) }
        } catch let error as AuditLogError {
            throw ValidationError(error.description)
        }
    }
}

func printJSON(_ value: JSONValue) {
    print((try? String(decoding: EventCoding.encode(value), as: UTF8.self)) ?? "{}")
}

struct VerifyAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Walk every stream's hash chain and the signed checkpoints; print what is wrong as JSON (exit 1 if anything is).")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: AuditKeyOptions
    @Option(help: "Only this stream's chain (the checkpoints cover the whole log)") var stream: String?

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        let key = try keys.key(signing: false)
        let result = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            try await PostgresAuditLog(client: database.client, logger: logger).verify(stream: stream, key: key)
        }
        var report: [String: JSONValue] = [
            "clean": .bool(result.clean),
            "streams": .number(Double(result.streams)),
            "events": .number(Double(result.events)),
            "findings": .array(result.findings.map { finding in
                var object: [String: JSONValue] = ["kind": .string(finding.kind.rawValue), "detail": .string(finding.detail)]
                if let stream = finding.streamID { object["stream_id"] = .string(stream) }
                if let version = finding.version { object["stream_version"] = .number(Double(version)) }
                return .object(object)
            }),
        ]
        if stream == nil {
            report["checkpoints"] = .number(Double(result.checkpoints))
            report["events_after_last_checkpoint"] = .number(Double(result.eventsAfterLastCheckpoint))
            report["signatures_checked"] = .bool(result.signaturesChecked)
        }
        printJSON(.object(report))
        for finding in result.findings { FileHandle.standardError.write(Data("audit: \(finding)\n".utf8)) }
        if stream == nil, !result.signaturesChecked, result.checkpoints > 0 {
            FileHandle.standardError.write(Data("audit: no key given: the checkpoints' digests were checked, their signatures not\n".utf8))
        }
        if !result.clean { throw ExitCode(1) }
    }
}

struct CheckpointAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Sign a checkpoint over the events committed since the last one, now.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var keys: AuditKeyOptions

    func run() async throws {
        let logger = try connection.logger("chronicle.audit", default: .critical)
        guard let key = try keys.key(signing: true) else {
            throw ValidationError("no signing key: set CHRONICLE_AUDIT_SIGNING_KEY (eval \"$(eventstore/dev/env.sh)\")")
        }
        let taken = try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            try await PostgresAuditLog(client: database.client, logger: logger).takeCheckpoint(key: key)
        }
        guard let taken else {
            printJSON(.object(["taken": .bool(false), "reason": .string("no event committed since the last checkpoint")]))
            return
        }
        printJSON(.object([
            "taken": .bool(true), "sequence": .number(Double(taken.sequence)), "end": .string(taken.end.description),
            "events": .number(Double(taken.eventCount)), "key_id": .string(taken.keyID),
        ]))
    }
}
