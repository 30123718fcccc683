import Foundation
import Testing

/// The bootstrap restarts a dev Postgres whose binaries changed on disk: installing
/// postgresql-doc-15 upgraded postgresql-15 under a running server, which then failed to load
/// plpgsql.so on every new connection (PLATFORM-NOTES).
@Suite struct DevScriptTests {
    /// Runs start.sh's `postgres_outdated` against the running dev server with `PG_BIN` as given.
    static func outdated(pgBin: String) throws -> String {
        let script = """
            set -e
            source eventstore/dev/config.sh
            . <(sed -n '/^postgres_outdated()/,/^}/p' eventstore/dev/start.sh)
            postgres_outdated "$CHRONICLE_DATA/pg"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = TestServers.root
        var environment = ProcessInfo.processInfo.environment
        environment["PG_BIN"] = pgBin
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func aPostgresWhoseInstalledVersionChangedIsFoundOutdated() throws {
        #expect(try Self.outdated(pgBin: "/usr/lib/postgresql/15/bin") == "", "the running server matches its binaries")
        let fake = FileManager.default.temporaryDirectory.appendingPathComponent("fake-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: fake, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(at: fake) }
        for tool in try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql/15/bin") where tool != "postgres" {
            try FileManager.default.createSymbolicLink(atPath: fake.appendingPathComponent(tool).path, withDestinationPath: "/usr/lib/postgresql/15/bin/\(tool)")
        }
        let postgres = fake.appendingPathComponent("postgres")
        try "#!/bin/sh\necho 'postgres (PostgreSQL) 15.99 (Debian 15.99-0+deb12u1)'\n".write(to: postgres, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: postgres.path)
        let said = try Self.outdated(pgBin: fake.path)
        #expect(said.hasPrefix("it runs 15.") && said.contains("but 15.99 is installed"), "said: '\(said)'")
    }
}
