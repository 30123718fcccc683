import Foundation
import Testing

/// The bootstrap restarts a dev Postgres whose binaries changed on disk: installing
/// postgresql-doc-15 upgraded postgresql-15 under a running server, which then failed to load
/// plpgsql.so on every new connection (PLATFORM-NOTES).
@Suite struct DevScriptTests {
    /// Runs start.sh's `postgres_outdated` against the running dev server. With `fakeVersion`,
    /// `PG_BIN` is a folder of links to the real binaries but a `postgres` that reports that
    /// version. The script makes the folder itself: a file this (multi-threaded, forking) process
    /// wrote could still be open in a child another test forked meanwhile, and executing it would
    /// fail with ETXTBSY.
    static func outdated(fakeVersion: String?) throws -> String {
        var script = """
            set -e
            source eventstore/dev/config.sh
            . <(sed -n '/^postgres_outdated()/,/^}/p' eventstore/dev/start.sh)

            """
        if let fakeVersion {
            script += """
                fake=$(mktemp -d)
                trap 'rm -rf "$fake"' EXIT
                chmod 755 "$fake"
                for tool in "$PG_BIN"/*; do [ "$(basename "$tool")" = postgres ] || ln -s "$tool" "$fake/"; done
                printf '#!/bin/sh\necho "postgres (PostgreSQL) \(fakeVersion) (Debian \(fakeVersion)-0+deb12u1)"\n' > "$fake/postgres"
                chmod 755 "$fake/postgres"
                PG_BIN=$fake

                """
        }
        script += "postgres_outdated \"$CHRONICLE_DATA/pg\"\n"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = TestServers.root
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func aPostgresWhoseInstalledVersionChangedIsFoundOutdated() throws {
        #expect(try Self.outdated(fakeVersion: nil) == "", "the running server matches its binaries")
        let said = try Self.outdated(fakeVersion: "15.99")
        #expect(said.hasPrefix("it runs 15.") && said.contains("but 15.99 is installed"), "said: '\(said)'")
    }
}
