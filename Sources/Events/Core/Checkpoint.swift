/// A place in the global log, in the order a subscriber reads it: by the appending transaction's
/// id, then by position. Positions alone are not a safe order, because concurrent transactions
/// commit out of position order (see eventstore/README.md).
public struct Checkpoint: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var transactionID: UInt64
    public var position: Int64

    public init(transactionID: UInt64, position: Int64) {
        self.transactionID = transactionID
        self.position = position
    }

    /// Before every event.
    public static let start = Checkpoint(transactionID: 0, position: 0)

    public static func < (lhs: Checkpoint, rhs: Checkpoint) -> Bool {
        (lhs.transactionID, lhs.position) < (rhs.transactionID, rhs.position)
    }

    public var description: String { "\(transactionID)/\(position)" }

    /// Parses the `transaction/position` form that `description` prints.
    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let tx = UInt64(parts[0]), let pos = Int64(parts[1]) else { return nil }
        self.init(transactionID: tx, position: pos)
    }
}
