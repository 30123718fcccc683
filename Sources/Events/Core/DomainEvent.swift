/// A domain event payload. `eventType` is the stored name: explicit and stable, never derived from
/// the Swift type name, so renaming a type never orphans history.
public protocol DomainEvent: Codable, Sendable, Equatable {
    static var eventType: String { get }
    /// The current shape's version. Older stored versions reach this shape through upcasters.
    static var schemaVersion: Int { get }
}

extension DomainEvent {
    public static var schemaVersion: Int { 1 }
}

/// The events of one aggregate as one Swift type (usually an enum), so a decider can switch over
/// them. `payload` and `init?(payload:)` convert to and from the registry's untyped form.
public protocol EventFamily: Sendable {
    /// The family's event types and upcasters: what a command handler decodes its stream with.
    static var registry: EventRegistry { get }
    var payload: any DomainEvent { get }
    init?(payload: any DomainEvent)
}
