/// Given/when/then for deciders, with no I/O:
///
///     try DeciderSpec<AgentDecider>.given([.created(created)])
///         .when(.delete(...))
///         .then([.deleted(...)])
///
/// `then` and `thenThrows` throw `DeciderSpecFailure` describing the difference, so they work
/// under any test framework with `try`.
public struct DeciderSpec<D: Decider> where D.Event: Equatable {
    let history: [D.Event]
    let command: D.Command?

    public static func given(_ events: [D.Event] = []) -> Self {
        Self(history: events, command: nil)
    }

    public func when(_ command: D.Command) -> Self {
        Self(history: history, command: command)
    }

    public var state: D.State { D.fold(history) }

    @discardableResult
    public func then(_ expected: [D.Event]) throws -> D.State {
        let actual: [D.Event]
        do {
            actual = try D.decide(requireCommand(), state: state)
        } catch let error as DeciderSpecFailure {
            throw error
        } catch {
            throw DeciderSpecFailure("expected events \(expected), but decide threw \(error)")
        }
        guard actual == expected else {
            throw DeciderSpecFailure("expected events \(expected), got \(actual)")
        }
        return D.fold(actual, from: state)
    }

    /// Passes when `decide` throws a `DomainError` with `code`.
    public func thenThrows(_ code: DomainError.Code) throws {
        do {
            let events = try D.decide(requireCommand(), state: state)
            throw DeciderSpecFailure("expected error \(code), got events \(events)")
        } catch let error as DomainError {
            guard error.code == code else {
                throw DeciderSpecFailure("expected error \(code), got \(error.code): \(error.message)")
            }
        }
    }

    private func requireCommand() throws -> D.Command {
        guard let command else { throw DeciderSpecFailure("no command: call when(_:) before then") }
        return command
    }
}

public struct DeciderSpecFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
