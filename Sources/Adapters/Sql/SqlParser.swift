import CPgQuery
import Events
import Foundation

/// PostgreSQL's own grammar (libpg_query, the PG 15 parser compiled as a library): a statement's
/// parse tree as JSON, or where and why it does not parse.
public enum SqlParser {
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        /// 1-based character position, when the parser gave one.
        public var position: Int?
        public var description: String { position.map { "\(message) at character \($0)" } ?? message }
    }

    public static func parse(_ sql: String) -> Result<JSONValue, ParseError> {
        let result = pg_query_parse(sql)
        defer { pg_query_free_parse_result(result) }
        if let error = result.error {
            let message = error.pointee.message.map { String(cString: $0) } ?? "the statement does not parse"
            let position = Int(error.pointee.cursorpos)
            return .failure(ParseError(message: message, position: position > 0 ? position : nil))
        }
        guard let tree = result.parse_tree else { return .failure(ParseError(message: "the parser returned nothing", position: nil)) }
        do {
            return .success(try EventCoding.decode(JSONValue.self, from: Data(String(cString: tree).utf8)))
        } catch {
            return .failure(ParseError(message: "the parse tree could not be read: \(error)", position: nil))
        }
    }
}
