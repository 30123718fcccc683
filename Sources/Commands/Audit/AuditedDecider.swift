import Events
import Foundation

/// A decider the audit routes fold a stream with, to show its state as of a point: the stream's
/// own decider, so the state is the one its commands were decided on.
public struct AuditedDecider: Sendable {
    public let category: String
    private let foldEvents: @Sendable ([RecordedEvent], EventRegistry) throws -> JSONValue

    public init<D: Decider>(_ decider: D.Type) {
        category = D.category
        foldEvents = { events, registry in
            StateJSON.value(D.fold(try events.map { try registry.decode($0, as: D.Event.self) }))
        }
    }

    /// The state after `events` (a prefix of the stream, in order), as JSON.
    public func state(after events: [RecordedEvent], registry: EventRegistry) throws -> JSONValue {
        try foldEvents(events, registry)
    }
}

/// A point in a stream: a version (0 is before its first event), a time (the last event recorded
/// at or before it), or its newest version.
public enum StatePoint: Sendable, Equatable {
    case version(Int64)
    case at(Date)
    case head
}

/// A state folded up to a point.
public struct FoldedState: Sendable, Equatable {
    public var streamID: String
    public var version: Int64
    public var recordedAt: Date?
    public var state: JSONValue

    public var json: JSONValue {
        .object([
            "stream_id": .string(streamID), "version": .number(Double(version)),
            "recorded_at": recordedAt.map { .string(Timestamp.format($0)) } ?? .null, "state": state,
        ])
    }

    /// The point without its state: what a diff names.
    public var summary: JSONValue {
        .object(["version": .number(Double(version)), "recorded_at": recordedAt.map { .string(Timestamp.format($0)) } ?? .null])
    }
}

extension DomainError.Code {
    public static let auditVersionOutOfRange: Self = "audit.version_out_of_range"
    public static let auditStreamTooLong: Self = "audit.stream_too_long"
}

extension AuditedDecider {
    /// The most events folded for one state.
    public static let maximumFold = 100_000

    /// Reads the stream from its first event up to the point, in pages, and folds it.
    public func fold(_ stream: String, in store: any EventStore, to point: StatePoint, registry: EventRegistry) async throws -> FoldedState {
        let head = try await store.streamVersion(stream)
        var last = head
        if case .version(let version) = point {
            guard version <= head else {
                throw DomainError(.invalid, code: .auditVersionOutOfRange, "the stream's newest version is \(head), not \(version)")
            }
            last = version
        }
        guard last <= Int64(Self.maximumFold) else {
            throw DomainError(
                .invalid, code: .auditStreamTooLong, "folding more than \(Self.maximumFold) events at once is refused; this stream has \(head)")
        }
        var events: [RecordedEvent] = []
        var next: Int64 = 1
        reading: while next <= last {
            let page = try await store.readStream(stream, from: next, direction: .forward, limit: Int(min(1000, last - next + 1)))
            guard !page.isEmpty else { break }
            for event in page {
                if case .at(let date) = point, event.recordedAt > date { break reading }
                events.append(event)
            }
            next = page[page.count - 1].streamVersion + 1
        }
        return FoldedState(
            streamID: stream, version: events.last?.streamVersion ?? 0, recordedAt: events.last?.recordedAt,
            state: try state(after: events, registry: registry))
    }
}

/// A decider's state as JSON, by reflection, so every decider can be audited without an encoder
/// of its own: structs are objects (keys in snake_case), enums their case (with its payload as
/// an object), optionals null or their value, sets sorted, dates RFC 3339, UUIDs lower-case.
public enum StateJSON {
    public static func value(_ any: Any) -> JSONValue {
        switch any {
        case let json as JSONValue: return json
        case let text as String: return .string(text)
        case let flag as Bool: return .bool(flag)
        case let number as Int: return .number(Double(number))
        case let number as Int64: return .number(Double(number))
        case let number as Int32: return .number(Double(number))
        case let number as UInt64: return .number(Double(number))
        case let number as Double: return .number(number)
        case let number as Float: return .number(Double(number))
        case let number as Decimal: return .number(NSDecimalNumber(decimal: number).doubleValue)
        case let date as Date: return .string(Timestamp.format(date))
        case let id as UUID: return .string(id.uuidString.lowercased())
        case let data as Data: return .string(data.base64EncodedString())
        default: break
        }
        let mirror = Mirror(reflecting: any)
        switch mirror.displayStyle {
        case .optional:
            return mirror.children.first.map { value($0.value) } ?? .null
        case .collection:
            return .array(mirror.children.map { value($0.value) })
        case .set:
            return .array(mirror.children.map { value($0.value) }.sorted { sortKey($0) < sortKey($1) })
        case .dictionary:
            var object: [String: JSONValue] = [:]
            for child in mirror.children {
                let pair = Array(Mirror(reflecting: child.value).children)
                guard pair.count == 2 else { continue }
                object[key(pair[0].value)] = value(pair[1].value)
            }
            return .object(object)
        case .enum:
            if let raw = any as? any RawRepresentable { return value(raw.rawValue) }
            let name = String(describing: any).prefix { $0 != "(" }
            guard let payload = mirror.children.first else { return .string(String(name)) }
            return .object([snakeCase(payload.label ?? String(name)): value(payload.value)])
        case .struct, .class, .tuple:
            let children = Array(mirror.children)
            if mirror.displayStyle == .tuple, children.allSatisfy({ $0.label?.hasPrefix(".") ?? true }) {
                return .array(children.map { value($0.value) })
            }
            var object: [String: JSONValue] = [:]
            for (index, child) in children.enumerated() { object[snakeCase(child.label ?? String(index))] = value(child.value) }
            return .object(object)
        default:
            return .string(String(describing: any))
        }
    }

    static func key(_ any: Any) -> String {
        switch value(any) {
        case .string(let text): text
        case let other: sortKey(other)
        }
    }

    static func sortKey(_ json: JSONValue) -> String {
        (try? String(decoding: EventCoding.encode(json), as: UTF8.self)) ?? ""
    }

    /// `ownerID` → `owner_id`, `createdAt` → `created_at`, `URLPath` → `url_path`.
    static func snakeCase(_ name: String) -> String {
        let characters = Array(name)
        var out = ""
        for (index, character) in characters.enumerated() {
            if character.isUppercase, index > 0 {
                let previous = characters[index - 1]
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                if previous.isLowercase || previous.isNumber || (previous.isUppercase && next?.isLowercase == true) { out.append("_") }
            }
            out.append(contentsOf: character.lowercased())
        }
        return out
    }

    /// One difference between two states, at a JSON pointer.
    public struct Change: Sendable, Equatable {
        public var path: String
        public var before: JSONValue?
        public var after: JSONValue?

        public init(path: String, before: JSONValue?, after: JSONValue?) {
            self.path = path
            self.before = before
            self.after = after
        }

        public var json: JSONValue {
            .object([
                "path": .string(path), "before": before ?? .null, "after": after ?? .null,
                "kind": .string(before == nil ? "added" : after == nil ? "removed" : "changed"),
            ])
        }
    }

    /// Every leaf that differs, by JSON pointer, in key order. Arrays of one length compare by
    /// index; of different lengths, as whole values.
    public static func diff(_ before: JSONValue, _ after: JSONValue, at path: String = "") -> [Change] {
        if before == after { return [] }
        switch (before, after) {
        case (.object(let old), .object(let new)):
            return Set(old.keys).union(new.keys).sorted().flatMap { name -> [Change] in
                let child = path + "/" + name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
                switch (old[name], new[name]) {
                case (let a?, let b?): return diff(a, b, at: child)
                case (let a?, nil): return [Change(path: child, before: a, after: nil)]
                case (nil, let b?): return [Change(path: child, before: nil, after: b)]
                case (nil, nil): return []
                }
            }
        case (.array(let old), .array(let new)) where old.count == new.count:
            return zip(old, new).enumerated().flatMap { diff($0.element.0, $0.element.1, at: "\(path)/\($0.offset)") }
        default:
            return [Change(path: path.isEmpty ? "/" : path, before: before, after: after)]
        }
    }
}
