import Adapters
import Foundation
import Logging
import ServiceLifecycle

/// The Audit module's configuration section: the key checkpoints are signed with, and how often.
struct AuditConfiguration {
    var key: CheckpointKey?
    var interval: Duration

    static let settings: [SettingDescription] = [
        .init(
            "chronicle.audit.signing_key", "none: no checkpoints are taken (warned)",
            "Ed25519 key signing the log's checkpoints, 32 bytes in base64 (head -c 32 /dev/urandom | base64)"),
        .init("chronicle.audit.checkpoint_seconds", "60", "Seconds between checkpoints (1 to 86400)"),
    ]

    init(_ settings: Settings) throws {
        key = try settings.text("chronicle.audit.signing_key", secret: true).map { try CheckpointKey(signingKeyBase64: $0) }
        interval = .seconds(try settings.integer("chronicle.audit.checkpoint_seconds", default: 60, range: 1...86_400))
    }
}

/// Signs a checkpoint over the events committed since the last one, every interval. Safe in any
/// number of processes: a second checkpoint with the same sequence is refused by its key.
struct AuditCheckpointer: Service {
    let log: PostgresAuditLog
    let key: CheckpointKey
    let interval: Duration
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                do {
                    if let taken = try await log.takeCheckpoint(key: key) {
                        logger.debug("audit checkpoint", metadata: ["audit.sequence": "\(taken.sequence)", "audit.events": "\(taken.eventCount)"])
                    }
                } catch {
                    logger.warning("audit checkpoint not taken", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
