import Commands
import Events
import Foundation

extension CommandHandler {
    /// When the stream's last event was recorded, and its version; nil for an empty stream.
    public func lastProgress(_ stream: String) async throws -> (at: Date, version: Int64)? {
        guard let last = try await store.readStream(stream, from: .max, direction: .backward, limit: 1).first else { return nil }
        return (last.recordedAt, last.streamVersion)
    }


    /// The context of an event that ends a run from outside a request (a give-up, the watchdog):
    /// the tenant and correlation of the message if there is one, else of the run's first event.
    public func endingContext(_ stream: String, commandID: String, userID: String, cause: IntegrationMessage?) async throws -> CommandContext {
        if let cause {
            return CommandContext(
                commandID: commandID, userID: userID, tenantID: cause.tenantID, correlationID: cause.correlationID,
                causationID: cause.eventID.uuidString.lowercased())
        }
        let first = try await store.readStream(stream, from: 1, direction: .forward, limit: 1).first
        return CommandContext(
            commandID: commandID, userID: userID, tenantID: first?.metadata.tenantID, correlationID: first?.metadata.correlationID,
            causationID: first?.eventID.uuidString.lowercased())
    }

    /// Appends `command`, which ends a run from outside a request, unless the run ended meanwhile
    /// (a conflict) or, with `ifAt`, moved past that version; true if it appended.
    public func end(
        _ command: D.Command, on stream: StreamID, commandID: String, userID: String, cause: IntegrationMessage?, ifAt version: Int64?
    ) async throws -> Bool {
        let context = try await endingContext(stream.description, commandID: commandID, userID: userID, cause: cause)
        do {
            let result = try await handle(command, on: stream, context: context, ifMatch: version)
            return result.append.map { !$0.duplicate } ?? false
        } catch let error as DomainError where error.kind == .conflict {
            return false
        } catch CommandHandlerError.preconditionFailed {
            return false
        }
    }
}
