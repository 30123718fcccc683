import Commands
import Logging
import PostgresNIO
import ServiceLifecycle

/// LISTENs on `chronicle_events` and turns each NOTIFY into an `AppendSignal`, so readers in
/// this process wake for appends made by any process. Reconnects after a lost connection; readers
/// poll meanwhile, so an outage costs latency only.
public struct PostgresAppendListener: Service {
    public static let channel = "chronicle_events"
    let client: PostgresClient
    let signal: AppendSignal
    let logger: Logger

    public init(client: PostgresClient, signal: AppendSignal, logger: Logger) {
        self.client = client
        self.signal = signal
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            // Anything appended between the last read and LISTEN taking effect.
                            signal.signal()
                            for try await _ in notifications { signal.signal() }
                        }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("LISTEN connection lost; retrying", metadata: ["error": "\(PostgresErrors.summary(error))"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
