import Foundation
import PostgresNIO
import Projections

extension SQLStatement {
    /// The statement as PostgresNIO runs it, with `{table}` placeholders resolved by `tables`.
    func query(tables: [String: String]) -> PostgresQuery {
        var text = sql
        for (name, physical) in tables { text = text.replacingOccurrences(of: "{\(name)}", with: physical) }
        var bindings = PostgresBindings()
        // Strings Postgres would refuse (U+0000) are stored escaped; readers call PostgresText.decode.
        for value in binds {
            switch value {
            case .text(let v): bindings.append(PostgresText.encode(v))
            case .int(let v): bindings.append(v)
            case .double(let v): bindings.append(v)
            case .bool(let v): bindings.append(v)
            case .uuid(let v): bindings.append(v)
            case .json(let v): bindings.append(String(decoding: PostgresText.encodeJSON(v), as: UTF8.self))
            case .timestamp(let v): bindings.append(v)
            case .null: bindings.appendNull()
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }
}
