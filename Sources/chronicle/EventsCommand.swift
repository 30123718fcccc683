import CLISupport
import Adapters
import ArgumentParser
import Commands
import Events
import Foundation
import Projections

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Read the event store.", subcommands: [StreamEvents.self, TailEvents.self])
}

/// One JSON object per event, the way an operator greps and pipes them.
enum EventPrinter {
    static func line(_ event: RecordedEvent, upcast: Bool) -> String {
        var data = (try? JSONDecoder().decode(JSONValue.self, from: event.data)) ?? .null
        var version = event.schemaVersion
        if upcast, let lifted = try? EventRegistry.chronicle.upcast(type: event.eventType, version: version, data: event.data),
            let json = try? JSONDecoder().decode(JSONValue.self, from: lifted)
        {
            data = json
            version = EventRegistry.chronicle.registrations[event.eventType]?.currentVersion ?? version
        }
        let object: JSONValue = .object([
            "position": .number(Double(event.position)),
            "checkpoint": .string(event.checkpoint.description),
            "stream_id": .string(event.streamID),
            "stream_version": .number(Double(event.streamVersion)),
            "event_id": .string(event.eventID.uuidString.lowercased()),
            "event_type": .string(event.eventType),
            "schema_version": .number(Double(version)),
            "recorded_at": .string(Timestamp.format(event.recordedAt)),
            "data": data,
            "metadata": (try? JSONDecoder().decode(JSONValue.self, from: EventCoding.encode(event.metadata))) ?? .null,
        ])
        return (try? String(decoding: EventCoding.encode(object), as: UTF8.self)) ?? "{}"
    }
}

struct StreamEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stream", abstract: "Print one stream's events as JSON lines.")

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The stream id, e.g. agent-<uuid>") var streamID: String
    @Option(help: "First version to print (default: 1, or the last when --backward)") var from: Int64?
    @Flag(help: "Newest first") var backward = false
    @Option(help: "At most this many events") var limit: Int = 1000
    @Flag(help: "Print payloads in their current shape (upcast), not as stored") var upcast = false

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
    }

    func run() async throws {
        let logger = try connection.logger("chronicle.events", default: .critical)
        try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger) { database in
            let events = try await database.eventStore.readStream(
                streamID, from: from ?? (backward ? Int64.max : 1), direction: backward ? .backward : .forward, limit: limit)
            for event in events { print(EventPrinter.line(event, upcast: upcast)) }
            if events.isEmpty {
                FileHandle.standardError.write(Data("events: stream \(streamID) has no events\n".utf8))
            }
        }
    }
}

struct TailEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail", abstract: "Follow the global log live, in checkpoint order, as JSON lines (Ctrl-C stops).")

    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .customLong("from-start"), help: "Start at the first event instead of the newest")
    var fromStart = false
    @Option(help: "Start after this checkpoint (transaction/position, as printed)") var after: String?
    @Flag(help: "Print payloads in their current shape (upcast)") var upcast = false

    func validate() throws {
        if let after, Checkpoint(after) == nil { throw ValidationError("--after must look like 1234/56") }
    }

    func run() async throws {
        let logger = try connection.logger("chronicle.events", default: .critical)
        try await ChronicleDatabase.withRunning(try connection.postgres(), logger: logger, listen: true) { database in
            let start: Checkpoint =
                if let after { Checkpoint(after)! } else if fromStart { .start } else { try await database.eventStore.head() }
            let follower = EventFollower(store: database.eventStore, signal: database.signal, logger: logger)
            try await follower.follow(from: start) { batch in
                let text = batch.map { EventPrinter.line($0, upcast: upcast) }.joined(separator: "\n") + "\n"
                FileHandle.standardOutput.write(Data(text.utf8))
            }
        }
    }
}
