import Foundation

/// Stream names are `<category>-<id>`, e.g. `agent-6F9619FF-...`. The category names the
/// aggregate type; snapshot policies and projections key on it.
public struct StreamID: Sendable, Hashable, CustomStringConvertible {
    public let category: String
    public let id: String

    public init(category: String, id: String) {
        self.category = category
        self.id = id
    }

    public init(category: String, id: UUID) {
        self.init(category: category, id: id.uuidString.lowercased())
    }

    /// Splits at the first `-`; nil where there is none.
    public init?(_ raw: String) {
        guard let dash = raw.firstIndex(of: "-"), dash != raw.startIndex else { return nil }
        self.init(category: String(raw[..<dash]), id: String(raw[raw.index(after: dash)...]))
    }

    public var description: String { "\(category)-\(id)" }
}
