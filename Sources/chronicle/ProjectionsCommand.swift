import CLISupport
import Adapters
import ArgumentParser
import Composition
import Events
import Foundation
import Metrics
import Projections

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections", abstract: "Inspect and rebuild the projectors.", subcommands: [ListProjections.self, RebuildProjection.self])
}

/// Shared setup of the read-side commands: the platform, without metrics.
func withPlatform<T: Sendable>(_ connection: ConnectionOptions, _ body: @Sendable (Platform) async throws -> T) async throws -> T {
    let logger = try connection.logger("chronicle.projections", default: .critical)
    let settings = Settings()
    return try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
        try await body(try ChronicleApp.platform(postgres: database, settings: settings, logger: logger))
    }
}

struct ListProjections: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Each projector's checkpoint, lag (events behind), lease epoch, generation and parked events.")

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await withPlatform(connection) { platform in
            let database = platform.database
            let states = try await database.projectorStates()
            let parked = try await platform.parking.parked(projector: nil)
            print(row(["PROJECTOR", "CHECKPOINT", "LAG", "EPOCH", "GEN", "PARKED"]))
            var listed: [(name: String, checkpoint: Checkpoint)] = []
            for projector in ChronicleApp.projectors(platform) { listed.append((projector.name, try await projector.checkpoint())) }
            // The relay (and any other Postgres-checkpointed runner) from the table itself.
            for (name, state) in states.sorted(by: { $0.key < $1.key }) where !listed.contains(where: { $0.name == name }) {
                listed.append((name, state.checkpoint))
            }
            for (name, checkpoint) in listed {
                let lag = try await database.eventsAfter(checkpoint)
                let state = states[name]
                let epoch = state.map { String($0.epoch) } ?? "-"
                let generation = state.map { String($0.generation) } ?? "-"
                let parkedCount = String(parked.filter { $0.projector == name }.count)
                print(row([name, checkpoint.description, String(lag), epoch, generation, parkedCount]))
            }
        }
    }
}

/// Fixed-width columns for the list output. A longer cell is never cut (`padding` truncates):
/// it pushes the row right by what it overflows, with one space after it.
private func row(_ cells: [String]) -> String {
    let widths = [22, 22, 10, 8, 6, 0]
    return zip(cells, widths).map { cell, width in
        width == 0 ? cell : cell.count >= width ? cell + " " : cell.padding(toLength: width, withPad: " ", startingAt: 0)
    }.joined()
}

struct RebuildProjection: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Build a read model again from position zero. Postgres: beside the live one, then swapped in atomically. Redis: cleared and replayed, while reads fall back to Postgres.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The projector's name (see projections list)") var name: String

    func run() async throws {
        try await withPlatform(connection) { platform in
            let projectors = ChronicleApp.projectors(platform)
            guard let projector = projectors.first(where: { $0.name == name }) else {
                if name == "relay" { throw CLIError("the relay is not a read model; rebuild supports \(projectors.map(\.name).sorted().joined(separator: ", "))") }
                throw CLIError("no projector named '\(name)' (see 'chronicle projections list')")
            }
            let what = projector.store == .postgres ? "a new generation of \(projector.swaps.joined(separator: ", "))" : "\(projector.swaps.joined(separator: ", ")) cleared and replayed"
            FileHandle.standardError.write(Data("rebuilding \(name): \(what)\n".utf8))
            let bar = ProgressBar()
            let result = try await projector.rebuild(progress: bar.show)
            bar.finish()
            print("rebuild: \(name) generation \(result.generation) swapped in after \(result.events) events")
        }
    }
}

/// One line on stderr, redrawn: events done, rate and time left.
final class ProgressBar: Sendable {
    func show(_ progress: RebuildProgress) {
        let seconds = max(0.001, Double(progress.elapsed.components.seconds) + Double(progress.elapsed.components.attoseconds) / 1e18)
        let rate = Double(progress.events) / seconds
        let fraction = min(1, Double(progress.events) / Double(max(1, progress.total)))
        let filled = Int(fraction * 30)
        let eta = rate > 0 ? Double(progress.total - progress.events) / rate : 0
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
            + "\(progress.events)/\(progress.total) events  \(Int(rate)) events/s  ETA \(Int(eta.rounded())) s   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}

struct ParkedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parked", abstract: "List, retry and skip events a projector could not apply.",
        subcommands: [ListParked.self, SettleParked.Retry.self, SettleParked.Skip.self])
}

struct ListParked: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Parked events as JSON lines.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only this projector's") var projector: String?

    func run() async throws {
        try await withPlatform(connection) { platform in
            for event in try await platform.parking.parked(projector: projector) {
                let object: JSONValue = .object([
                    "projector": .string(event.projector), "event_id": .string(event.eventID.uuidString.lowercased()),
                    "stream_id": .string(event.streamID), "stream_version": .number(Double(event.streamVersion)),
                    "checkpoint": .string(event.checkpoint.description), "error": .string(event.error),
                    "attempts": .number(Double(event.attempts)), "status": .string(event.status),
                    "held_behind": event.heldBehind.map { .string($0.uuidString.lowercased()) } ?? .null,
                    "parked_at": .string(Timestamp.format(event.parkedAt)),
                ])
                print(String(decoding: try EventCoding.encode(object), as: UTF8.self))
            }
        }
    }
}

enum SettleParked {
    static func settle(_ action: ParkedEvent.Action, _ connection: ConnectionOptions, projector: String, eventID: String) async throws {
        guard let id = UUID(uuidString: eventID) else { throw ValidationError("'\(eventID)' is not an event id") }
        let found = try await withPlatform(connection) { platform in
            try await platform.parking.request(action, projector: projector, eventID: id)
        }
        guard found else {
            throw CLIError("no parked event \(eventID) for \(projector) (held events follow the one they wait behind)")
        }
        print("parked: \(action.rawValue) requested for \(eventID); the projector's lease holder applies it")
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "retry", abstract: "Apply a parked event again, then the events held behind it.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var projector: String
        @Argument(help: "The parked event's id") var eventID: String
        func run() async throws { try await SettleParked.settle(.retry, connection, projector: projector, eventID: eventID) }
    }

    struct Skip: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "skip", abstract: "Drop a parked event and apply the events held behind it.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var projector: String
        @Argument(help: "The parked event's id") var eventID: String
        func run() async throws { try await SettleParked.settle(.skip, connection, projector: projector, eventID: eventID) }
    }
}
