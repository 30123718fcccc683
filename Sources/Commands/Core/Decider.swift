import Events

/// An aggregate as a decider: a pure `decide` from a command and the current state to new events,
/// and a total `evolve` that folds an event into the state. Clocks, new ids and looked-up data
/// arrive inside the command; `decide` never reads them from the world.
public protocol Decider: Sendable {
    associatedtype Command: Sendable
    associatedtype Event: EventFamily
    associatedtype State: Sendable

    /// The stream category, e.g. `agent`: the prefix of stream ids and the key of snapshot policies.
    static var category: String { get }
    static var initialState: State { get }
    /// Throws a `DomainError` when the command breaks an invariant.
    static func decide(_ command: Command, state: State) throws -> [Event]
    /// Must not fail: an event is a fact that already happened.
    static func evolve(_ state: State, _ event: Event) -> State
}

extension Decider {
    public static func fold<S: Sequence>(_ events: S, from state: State = initialState) -> State where S.Element == Event {
        events.reduce(state, evolve)
    }
}

/// A decider whose state may be snapshotted. `stateVersion` changes whenever `State`'s encoding
/// does; a snapshot of another version is ignored and the state is rebuilt from events.
public protocol SnapshottingDecider: Decider where State: Codable {
    static var stateVersion: Int { get }
}
