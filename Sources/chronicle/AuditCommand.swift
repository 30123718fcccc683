import Adapters
import ArgumentParser
import CLISupport
import Composition
import Events
import Foundation

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Answer for the log: verify its hash chains and signed checkpoints.",
        subcommands: [VerifyAudit.self, CheckpointAudit.self])
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
