import Foundation

/// A bound on a text field, in characters (what a person counts) and in UTF-8 bytes (what the
/// text costs to store, index and send). A Swift `Character` is a grapheme cluster, which can hold
/// any number of combining marks: a bound in characters alone let a "255-character" name be
/// 600 KB. Every length rule of the domain goes through this type.
public struct TextLimit: Sendable, Equatable {
    public let characters: ClosedRange<Int>
    public let bytes: Int

    /// `bytes` defaults to four per character, the most one Unicode scalar takes in UTF-8: room
    /// for any script, none for stacks of combining marks.
    public init(characters: ClosedRange<Int>, bytes: Int? = nil) {
        self.characters = characters
        self.bytes = bytes ?? characters.upperBound * 4
    }

    /// Bytes first: they cost nothing to count, so characters are only counted in bounded text.
    public func admits(_ text: String) -> Bool {
        text.utf8.count <= bytes && characters.contains(text.count)
    }

    /// What the rule says, for the error: "1 to 255 characters (at most 1020 bytes)".
    public var phrase: String {
        let count = characters.lowerBound == 0 ? "at most \(characters.upperBound)" : "\(characters.lowerBound) to \(characters.upperBound)"
        return "\(count) characters (at most \(bytes) bytes of UTF-8)"
    }

    /// Throws the `invalid` domain error `code`, "`field` must be …", unless `text` fits.
    public func check(_ text: String, field: String, code: DomainError.Code) throws {
        guard admits(text) else { throw DomainError(.invalid, code: code, "\(field) must be \(phrase)") }
    }
}
