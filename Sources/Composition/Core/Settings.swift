import Configuration
import Foundation

/// The one typed reader of Chronicle's settings, on swift-configuration's `ConfigReader` over the
/// environment. Keys are dotted (`chronicle.agent.workers`) and read from the variable
/// `CHRONICLE_AGENT_WORKERS`. An empty variable counts as unset. A value that is set but is not
/// of its type or out of its range is one clear error naming the variable; nothing falls back
/// silently (the reader's own `int(forKey:default:)` would).
public struct Settings: Sendable {
    let reader: ConfigReader
    let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let set = environment.filter { !$0.value.isEmpty }
        self.environment = set
        reader = ConfigReader(
            provider: EnvironmentVariablesProvider(
                environmentVariables: set,
                secretsSpecifier: .dynamic { name, _ in ["SECRET", "KEY", "PASSWORD"].contains { name.contains($0) } }))
    }

    /// The environment variable a key is read from.
    public static func variable(_ key: String) -> String {
        key.split(separator: ".").map { $0.uppercased() }.joined(separator: "_")
    }

    func key(_ key: String) -> ConfigKey { ConfigKey(key.split(separator: ".").map(String.init)) }

    /// The text of a setting, if set.
    public func text(_ key: String, secret: Bool = false) -> String? {
        reader.string(forKey: self.key(key), isSecret: secret)
    }

    public func text(_ key: String, default value: String) -> String { text(key) ?? value }

    /// A whole number in `range`.
    public func integer(_ key: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard text(key) != nil else { return value }
        guard let number = reader.int(forKey: self.key(key)), range.contains(number) else {
            throw SettingsError("\(Self.variable(key)) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// A whole number ≥ 0, where 0 means unlimited.
    public func limit(_ key: String, default value: Int) throws -> Int {
        guard text(key) != nil else { return value }
        guard let number = reader.int(forKey: self.key(key)), number >= 0 else {
            throw SettingsError("\(Self.variable(key)) must be a whole number ≥ 0 (0 means unlimited)")
        }
        return number
    }

    /// A number ≥ 0.
    public func number(_ key: String, default value: Double) throws -> Double {
        guard let text = text(key) else { return value }
        guard let number = Double(text), number >= 0 else { throw SettingsError("\(Self.variable(key)) must be a non-negative number") }
        return number
    }

    /// Comma-separated items, trimmed, empty ones dropped.
    public func list(_ key: String) -> [String] {
        (text(key) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// An absolute path.
    public func path(_ key: String, default value: String) throws -> String {
        let path = text(key) ?? value
        guard path.hasPrefix("/") else { throw SettingsError("\(Self.variable(key)) must be an absolute path") }
        return path
    }

    /// The contents of the file a setting names, if it names one.
    public func file(_ key: String) throws -> String? {
        guard let path = text(key) else { return nil }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SettingsError("\(Self.variable(key)): cannot read \(path)")
        }
    }
}

/// A setting that is set but wrong: one line naming the variable.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
