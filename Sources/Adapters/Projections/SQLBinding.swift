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

extension SQLStatement {
    /// A plain INSERT, UPDATE or DELETE with no RETURNING: what a PL/pgSQL block can run as is.
    var blockable: Bool {
        let head = sql.drop { $0.isWhitespace }.prefix(7).uppercased()
        return (head.hasPrefix("INSERT") || head.hasPrefix("UPDATE") || head.hasPrefix("DELETE"))
            && sql.range(of: "RETURNING", options: .caseInsensitive) == nil
    }

    /// Statements (inlined) as one `DO` block, run in order as one statement; nil if the body
    /// holds the block's quote tag.
    static func anonymousBlock(_ statements: [String]) -> String? {
        let tag = "$chronicle_batch$"
        let body = statements.joined(separator: ";\n")
        guard !body.contains(tag) else { return nil }
        return "DO \(tag) BEGIN\n\(body);\nEND \(tag)"
    }

    /// The statement with every `$n` replaced by its value as a typed literal (`E'…'::text`,
    /// `'…'::int8`, ...: the types PostgresNIO binds these values as), for running many
    /// statements in one round trip. `$n` inside quoted strings, quoted identifiers, dollar quotes
    /// and comments is left alone. Nil when a placeholder has no value.
    func inlined(tables: [String: String]) -> String? {
        var text = sql
        for (name, physical) in tables { text = text.replacingOccurrences(of: "{\(name)}", with: physical) }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        func copy(until end: Int) {
            out.append(contentsOf: scalars[index..<min(end, scalars.count)])
            index = min(end, scalars.count)
        }
        func find(_ needle: [Unicode.Scalar], from start: Int) -> Int {
            var at = start
            while at + needle.count <= scalars.count {
                if Array(scalars[at..<(at + needle.count)]) == needle { return at + needle.count }
                at += 1
            }
            return scalars.count
        }
        while index < scalars.count {
            let scalar = scalars[index]
            let next = index + 1 < scalars.count ? scalars[index + 1] : nil
            switch scalar {
            case "'", "\"":
                // A quoted string or identifier; a doubled quote inside it is part of it.
                var end = index + 1
                while end < scalars.count {
                    if scalars[end] == scalar {
                        if end + 1 < scalars.count, scalars[end + 1] == scalar { end += 2; continue }
                        break
                    }
                    end += 1
                }
                copy(until: end + 1)
            case "-" where next == "-":
                copy(until: find(["\n"], from: index))
            case "/" where next == "*":
                copy(until: find(["*", "/"], from: index + 2))
            case "$" where next.map({ ("0"..."9").contains($0) }) ?? false:
                var end = index + 1
                while end < scalars.count, ("0"..."9").contains(scalars[end]) { end += 1 }
                guard let number = Int(String(String.UnicodeScalarView(scalars[(index + 1)..<end]))), number >= 1, number <= binds.count
                else { return nil }
                out.append(contentsOf: Self.literal(binds[number - 1]).unicodeScalars)
                index = end
            case "$":
                // A dollar quote ($$ or $tag$) runs to the same tag again.
                var end = index + 1
                while end < scalars.count, scalars[end] == "_" || scalars[end].properties.isAlphabetic || ("0"..."9").contains(scalars[end]) {
                    end += 1
                }
                if end < scalars.count, scalars[end] == "$" {
                    let tag = Array(scalars[index...end])
                    copy(until: find(tag, from: end + 1))
                } else {
                    copy(until: index + 1)
                }
            default:
                copy(until: index + 1)
            }
        }
        return String(out)
    }

    /// A value as a literal of the type PostgresNIO binds it as.
    static func literal(_ value: SQLValue) -> String {
        func quoted(_ text: String) -> String {
            // An escape string: correct whatever standard_conforming_strings says. Each backslash
            // and quote doubled byte by byte (Foundation's replacingOccurrences went through
            // NSString, a tenth of a projector's CPU).
            var out: [UInt8] = [UInt8(ascii: "E"), UInt8(ascii: "'")]
            out.reserveCapacity(text.utf8.count + 8)
            for byte in text.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "'") { out.append(byte) }
                out.append(byte)
            }
            out.append(UInt8(ascii: "'"))
            return String(decoding: out, as: UTF8.self)
        }
        switch value {
        case .text(let text): return quoted(PostgresText.encode(text)) + "::text"
        case .int(let number): return "'\(number)'::int8"
        case .double(let number): return "'\(PostgresText.float8(number))'::float8"
        case .bool(let flag): return flag ? "true" : "false"
        case .uuid(let id): return "'\(id.uuidString)'::uuid"
        case .json(let data): return quoted(String(decoding: PostgresText.encodeJSON(data), as: UTF8.self)) + "::text"
        case .timestamp(let date):
            var bytes: [UInt8] = []
            RowFolderTimestamp.write(date, to: &bytes, quoted: false)
            return "'" + String(decoding: bytes, as: UTF8.self) + "'::timestamptz"
        case .null: return "NULL"
        }
    }
}
