import ArgumentParser
import Foundation

/// The one executable. Errors of any kind end as one line on stderr and a non-zero exit.
struct Chronicle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chronicle",
        abstract: "Chronicle: the event-sourced backend of an AI workflow platform.",
        subcommands: [Serve.self, Migrate.self, UsersCommand.self, EventsCommand.self, ProjectionsCommand.self, ParkedCommand.self, Bench.self])
}

@main
enum Main {
    static func main() async {
        do {
            var command = try Chronicle.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(report(error))
        }
    }

    /// Prints help and clean exits as ArgumentParser would; everything else as one line.
    static func report(_ error: any Error) -> Int32 {
        let code = Chronicle.exitCode(for: error)
        if code == .success {
            print(Chronicle.fullMessage(for: error))
            return 0
        }
        let text = Chronicle.message(for: error)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? "failed"
        let hint = Chronicle.exitCode(for: error) == .validationFailure ? " (see 'chronicle --help')" : ""
        FileHandle.standardError.write(Data("chronicle: error: \(line)\(hint)\n".utf8))
        return code == .validationFailure ? 64 : 1
    }
}
