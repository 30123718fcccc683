import Foundation

/// Knows every stored event type: its Swift payload type, its current schema version and the
/// upcasters that lift each older stored version to the next. Decoding always upcasts first, so
/// code only ever sees the current shape and history is never rewritten.
public struct EventRegistry: Sendable {
    public struct Registration: Sendable {
        public let payloadType: any DomainEvent.Type
        /// Upcasters keyed by the version they read; each returns the next version's JSON.
        public let upcasters: [Int: Upcaster]
        public var currentVersion: Int { payloadType.schemaVersion }
        /// Every version that may be stored: 1 through the current one.
        public var storedVersions: ClosedRange<Int> { 1...currentVersion }
    }

    public typealias Upcaster = @Sendable (JSONValue) throws -> JSONValue

    public private(set) var registrations: [String: Registration] = [:]

    public init() {}

    /// Registers a payload type. `upcasters[v]` turns version v into v + 1.
    public mutating func register<E: DomainEvent>(_ type: E.Type, upcasters: [Int: Upcaster] = [:]) {
        precondition(registrations[E.eventType] == nil, "event type \(E.eventType) registered twice")
        registrations[E.eventType] = Registration(payloadType: type, upcasters: upcasters)
    }

    public func registering(_ other: EventRegistry) -> EventRegistry {
        var merged = self
        for (name, registration) in other.registrations {
            precondition(merged.registrations[name] == nil, "event type \(name) registered twice")
            merged.registrations[name] = registration
        }
        return merged
    }

    /// The stored JSON of `(type, version)` lifted to the current version's JSON.
    public func upcast(type: String, version: Int, data: Data) throws -> Data {
        guard let registration = registrations[type] else { throw EventDecodingError.unknownType(type) }
        if version == registration.currentVersion { return data }
        guard version >= 1, version < registration.currentVersion else {
            throw EventDecodingError.unsupportedVersion(type: type, version: version, current: registration.currentVersion)
        }
        var json = try JSONDecoder().decode(JSONValue.self, from: data)
        for step in version..<registration.currentVersion {
            guard let upcaster = registration.upcasters[step] else {
                throw EventDecodingError.missingUpcaster(type: type, fromVersion: step)
            }
            json = try upcaster(json)
        }
        return try EventCoding.encode(json)
    }

    /// Decodes a stored event into its current payload type.
    public func decode(type: String, version: Int, data: Data) throws -> any DomainEvent {
        guard let registration = registrations[type] else { throw EventDecodingError.unknownType(type) }
        let current = try upcast(type: type, version: version, data: data)
        do {
            return try Self.decodePayload(registration.payloadType, from: current)
        } catch {
            throw EventDecodingError.malformed(type: type, version: version, reason: String(describing: error))
        }
    }

    public func decode(_ event: RecordedEvent) throws -> any DomainEvent {
        try decode(type: event.eventType, version: event.schemaVersion, data: event.data)
    }

    /// Decodes into one aggregate's event family; an event of another family is an error.
    public func decode<F: EventFamily>(_ event: RecordedEvent, as family: F.Type) throws -> F {
        let payload = try decode(event)
        guard let member = F(payload: payload) else {
            throw EventDecodingError.wrongFamily(type: event.eventType, family: String(describing: F.self))
        }
        return member
    }

    private static func decodePayload<E: DomainEvent>(_ type: E.Type, from data: Data) throws -> any DomainEvent {
        try EventCoding.decode(type, from: data)
    }
}

/// Why a stored event could not be turned into a current payload.
public enum EventDecodingError: Error, Equatable, CustomStringConvertible {
    case unknownType(String)
    case unsupportedVersion(type: String, version: Int, current: Int)
    case missingUpcaster(type: String, fromVersion: Int)
    case malformed(type: String, version: Int, reason: String)
    case wrongFamily(type: String, family: String)

    public var description: String {
        switch self {
        case .unknownType(let type): "unknown event type '\(type)'"
        case .unsupportedVersion(let type, let version, let current):
            "event type '\(type)' has no version \(version) (current is \(current))"
        case .missingUpcaster(let type, let from): "no upcaster for '\(type)' from version \(from)"
        case .malformed(let type, let version, let reason): "'\(type)' v\(version) does not decode: \(reason)"
        case .wrongFamily(let type, let family): "'\(type)' is not an event of \(family)"
        }
    }
}
