import CLISupport
import Adapters
import ArgumentParser
import Composition
import Commands
import Events
import Foundation
import Logging

/// `chronicle users ...`: what an operator does to users, through the same decider the API uses.
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Create users and change their roles, tier and state.",
        subcommands: [Create.self, Grant.self, Revoke.self, Tier.self, Disable.self, Enable.self, Password.self])

    /// Runs a command against the user of `email`, printing what changed.
    static func apply(
        _ connection: ConnectionOptions, email: String, _ make: @escaping @Sendable (UUID, Date) -> UserDecider.Command
    ) async throws {
        let logger = try connection.logger("chronicle.users", default: .critical)
        try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            let id = UserDecider.userID(email: email)
            let handler = CommandHandler<UserDecider>(store: database.eventStore)
            let result = try await handler.handle(make(id, Date()), on: UserDecider.streamID(id), context: CommandContext(userID: "operator"))
            print(Self.describe(id, result.state, changed: result.append != nil))
        }
    }

    static func describe(_ id: UUID, _ state: UserDecider.State, changed: Bool) -> String {
        "\(state.email ?? "?") id=\(id.uuidString.lowercased()) tenant=\(state.tenantID ?? "?") tier=\(state.tier.rawValue) "
            + "roles=\(state.roles.map(\.rawValue).sorted().joined(separator: ",")) \(state.disabled ? "disabled" : "enabled")"
            + (changed ? "" : " (unchanged)")
    }

    /// Stores the password's hash (apart from the events), then records that it was set.
    static func setPassword(_ password: String, of id: UUID, in database: ChronicleDatabase, logger: Logger) async throws -> UserDecider.State {
        let hash = try await ScryptPasswordHasher().hash(password)
        try await PostgresCredentialStore(client: database.client, logger: logger).setPasswordHash(hash, of: id)
        let result = try await CommandHandler<UserDecider>(store: database.eventStore).handle(
            .recordPasswordSet(userID: id, now: Date()), on: UserDecider.streamID(id), context: CommandContext(userID: "operator"))
        return result.state
    }

    /// The password from a file, standard input or the environment; never from the command line,
    /// where other users of the machine could read it.
    static func password(file: String?, stdin: Bool) throws -> String? {
        if let file {
            return try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .newlines)
        }
        if stdin { return readLine(strippingNewline: true) }
        return Settings().text("chronicle.user_password", secret: true)
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a user (and set their password).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Email, the user's sign-in name") var email: String
        @Option(help: "Display name (default: the part of the email before @)") var name: String?
        @Option(help: "Tenant") var tenant: String = "default"
        @Option(help: "free, pro or enterprise") var tier: String = "free"
        @Option(help: "Role to grant; repeat for several (admin, member, viewer; default member)") var role: [String] = []
        @Option(help: "Read the password from this file") var passwordFile: String?
        @Flag(help: "Read the password from standard input") var passwordStdin = false
        @Flag(help: "Succeed without change if the user exists") var ifMissing = false

        func run() async throws {
            guard let tier = UserTier(rawValue: tier) else { throw ValidationError("tier must be free, pro or enterprise") }
            let roles = try (role.isEmpty ? ["member"] : role).map { name -> UserRole in
                guard let role = UserRole(rawValue: name) else { throw ValidationError("unknown role '\(name)'; roles are admin, member, viewer") }
                return role
            }
            let password = try UsersCommand.password(file: passwordFile, stdin: passwordStdin)
            guard let password else {
                throw ValidationError("give a password: --password-file F, --password-stdin or CHRONICLE_USER_PASSWORD")
            }
            try PasswordPolicy.validate(password)
            let logger = try connection.logger("chronicle.users", default: .critical)
            let email = self.email
            let display = name ?? String(email.split(separator: "@").first ?? "user")
            try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
                let handler = CommandHandler<UserDecider>(store: database.eventStore)
                let register = RegisterUser(email: email, displayName: display, tenantID: tenant, tier: tier, roles: roles, now: Date())
                let stream = UserDecider.streamID(register.userID)
                let (existing, _) = try await handler.load(stream.description)
                if existing.exists {
                    guard ifMissing else { throw CLIError("a user with email \(email) exists") }
                    print(UsersCommand.describe(register.userID, existing, changed: false))
                    return
                }
                _ = try await handler.handle(.register(register), on: stream, context: CommandContext(userID: "operator"))
                let state = try await UsersCommand.setPassword(password, of: register.userID, in: database, logger: logger)
                print(UsersCommand.describe(register.userID, state, changed: true))
            }
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String
        @Option(help: "Read the password from this file") var passwordFile: String?
        @Flag(help: "Read the password from standard input") var passwordStdin = false

        func run() async throws {
            guard let password = try UsersCommand.password(file: passwordFile, stdin: passwordStdin) else {
                throw ValidationError("give a password: --password-file F, --password-stdin or CHRONICLE_USER_PASSWORD")
            }
            try PasswordPolicy.validate(password)
            let logger = try connection.logger("chronicle.users", default: .critical)
            let email = self.email
            try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
                let id = UserDecider.userID(email: email)
                let handler = CommandHandler<UserDecider>(store: database.eventStore)
                let (state, _) = try await handler.load(UserDecider.streamID(id).description)
                guard state.exists else { throw CLIError("no user with email \(email)") }
                print(UsersCommand.describe(id, try await UsersCommand.setPassword(password, of: id, in: database, logger: logger), changed: true))
            }
        }
    }

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Grant a role (admin, member, viewer).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String
        @Argument(help: "Role") var role: String

        func run() async throws {
            guard let role = UserRole(rawValue: role) else { throw ValidationError("unknown role '\(self.role)'; roles are admin, member, viewer") }
            try await UsersCommand.apply(connection, email: email) { .grantRole(userID: $0, role: role, now: $1) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a role.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String
        @Argument(help: "Role") var role: String

        func run() async throws {
            guard let role = UserRole(rawValue: role) else { throw ValidationError("unknown role '\(self.role)'; roles are admin, member, viewer") }
            try await UsersCommand.apply(connection, email: email) { .revokeRole(userID: $0, role: role, now: $1) }
        }
    }

    struct Tier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a user to a tier (free, pro, enterprise).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String
        @Argument(help: "Tier") var tier: String

        func run() async throws {
            guard let tier = UserTier(rawValue: tier) else { throw ValidationError("tier must be free, pro or enterprise") }
            try await UsersCommand.apply(connection, email: email) { .changeTier(userID: $0, tier: tier, now: $1) }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: no sign-in, and their tokens stop working within 5 s.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String

        func run() async throws {
            try await UsersCommand.apply(connection, email: email) { .disable(userID: $0, now: $1) }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Email") var email: String

        func run() async throws {
            try await UsersCommand.apply(connection, email: email) { .enable(userID: $0, now: $1) }
        }
    }
}
