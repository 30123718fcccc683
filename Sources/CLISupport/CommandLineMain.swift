import ArgumentParser
import Composition
import Foundation

/// Runs a root command the way both executables do: errors of any kind end as one line on
/// stderr and a non-zero exit (64 for usage and configuration errors, 1 otherwise).
public enum CommandLineMain {
    public static func run<Root: ParsableCommand>(_ root: Root.Type) async -> Never {
        do {
            var command = try Root.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            exit(report(error, root))
        }
    }

    /// Prints help and clean exits as ArgumentParser would; everything else as one line.
    static func report<Root: ParsableCommand>(_ error: any Error, _ root: Root.Type) -> Int32 {
        if let error = error as? SettingsError {
            FileHandle.standardError.write(Data("\(Root.configuration.commandName ?? "chronicle"): error: \(error.description)\n".utf8))
            return 64
        }
        let code = Root.exitCode(for: error)
        if code == .success {
            print(Root.fullMessage(for: error))
            return 0
        }
        let text = Root.message(for: error)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? "failed"
        let name = Root.configuration.commandName ?? "chronicle"
        let hint = code == .validationFailure ? " (see '\(name) --help')" : ""
        FileHandle.standardError.write(Data("\(name): error: \(line)\(hint)\n".utf8))
        return code == .validationFailure ? 64 : 1
    }
}
