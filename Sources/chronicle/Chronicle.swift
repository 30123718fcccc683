import ArgumentParser
import CLISupport

/// The one executable. Errors of any kind end as one line on stderr and a non-zero exit.
struct Chronicle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chronicle",
        abstract: "Chronicle: the event-sourced backend of an AI workflow platform.",
        subcommands: [
            Serve.self, Migrate.self, UsersCommand.self, EventsCommand.self, ProjectionsCommand.self, ParkedCommand.self, SettingsCommand.self, AuditCommand.self, SqlCommand.self,
        ])
}

@main
enum Main {
    static func main() async { await CommandLineMain.run(Chronicle.self) }
}
