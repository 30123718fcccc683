import CLISupport
import Adapters
import ArgumentParser

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending event store migrations (safe to run twice, and from two processes at once).")

    @OptionGroup var connection: ConnectionOptions

    @Option(name: .customLong("migrations-dir"), help: "Folder of NNNN_name.sql files (default: eventstore/migrations)")
    var migrationsDir: String?

    func run() async throws {
        let logger = try connection.logger("chronicle.migrate", default: .critical)
        let migrator = try locateMigrator(migrationsDir)
        let settings = try connection.postgres()
        let applied = try await ChronicleDatabase.withRunning(settings, logger: logger) { database in
            try await database.migrate(migrator)
        }
        print(applied.isEmpty
            ? "migrate: up to date (\(migrator.migrations.count) migrations)"
            : "migrate: applied \(applied.map(String.init).joined(separator: ", "))")
    }
}
