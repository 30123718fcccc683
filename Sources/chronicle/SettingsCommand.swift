import ArgumentParser
import CLISupport
import Composition

/// `chronicle settings`: every setting, by section, from the manifests that read them.
struct SettingsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settings", abstract: "List every setting (environment variable), its default and meaning, by module.")

    func run() throws {
        let sections = [("chronicle", ChronicleApp.settings)] + Modules.settings.map { ($0.module, $0.settings) }
        print("| variable | default | meaning | section |")
        print("|---|---|---|---|")
        for (section, settings) in sections {
            for setting in settings {
                print("| `\(setting.variable)` | \(setting.defaultValue.isEmpty ? "none" : "`\(setting.defaultValue)`") | \(setting.meaning) | \(section) |")
            }
        }
    }
}
