import Crypto
import Events
import Foundation

/// A data source's schema as the translator and the model see it: relations, columns, comments.
public struct SqlSchema: Sendable, Equatable {
    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: String
        public var comment: String?
        public init(name: String, type: String, comment: String?) {
            self.name = name
            self.type = type
            self.comment = comment
        }
    }

    public struct Relation: Sendable, Equatable {
        public var schema: String
        public var name: String
        public var comment: String?
        public var columns: [Column]
        public init(schema: String, name: String, comment: String?, columns: [Column]) {
            self.schema = schema
            self.name = name
            self.comment = comment
            self.columns = columns
        }
    }

    public var relations: [Relation]

    public init(relations: [Relation]) {
        self.relations = relations
    }

    /// As JSON: names and comments are data, never instructions.
    public var json: JSONValue {
        .array(relations.map { relation in
            .object([
                "schema": .string(relation.schema), "name": .string(relation.name), "comment": relation.comment.map(JSONValue.string) ?? .null,
                "columns": .array(relation.columns.map { column in
                    .object(["name": .string(column.name), "type": .string(column.type), "comment": column.comment.map(JSONValue.string) ?? .null])
                }),
            ])
        })
    }

    /// sha256 of the JSON with sorted keys: changes whenever a name, type or comment does.
    public var hash: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return SHA256.hash(data: (try? encoder.encode(json)) ?? Data()).map { String(format: "%02x", $0) }.joined()
    }
}

/// Turns a few plain question shapes into SQL over a schema, with no model: "how many X",
/// "list X", "top N X by Y" and "X per Y". Anything else is refused, never guessed.
public enum OfflineSqlTranslator {
    public static let name = "offline"

    public struct NeedsModel: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func translate(_ question: String, schema: SqlSchema) throws -> String {
        let words = question.lowercased().replacingOccurrences(of: "?", with: " ").split(whereSeparator: { $0.isWhitespace }).map(String.init)
        let text = words.joined(separator: " ")
        func relation(_ phrase: String) -> SqlSchema.Relation? {
            let wanted = Self.normalize(phrase)
            return schema.relations.first { candidates(of: $0).contains(wanted) }
        }
        func column(_ phrase: String, in relation: SqlSchema.Relation) -> SqlSchema.Column? {
            let wanted = Self.normalize(phrase)
            return relation.columns.first { Self.normalize($0.name.replacingOccurrences(of: "_", with: " ")) == wanted }
                ?? relation.columns.first { $0.name.replacingOccurrences(of: "_", with: " ").hasPrefix(wanted) }
                ?? relation.columns.first { $0.name.contains(wanted.replacingOccurrences(of: " ", with: "_")) }
        }
        func qualified(_ relation: SqlSchema.Relation) -> String { "\(relation.schema).\(relation.name)" }

        if text.hasPrefix("how many "), let target = relation(String(text.dropFirst("how many ".count))) {
            return "SELECT count(*) AS count FROM \(qualified(target))"
        }
        if text.hasPrefix("list "), let target = relation(String(text.dropFirst("list ".count))) {
            return "SELECT * FROM \(qualified(target)) LIMIT 100"
        }
        if words.count >= 5, words[0] == "top", let limit = Int(words[1]), (1...1000).contains(limit), let by = words.firstIndex(of: "by"), by > 2,
            let target = relation(words[2..<by].joined(separator: " ")), let order = column(words[(by + 1)...].joined(separator: " "), in: target)
        {
            return "SELECT * FROM \(qualified(target)) ORDER BY \(order.name) DESC NULLS LAST LIMIT \(limit)"
        }
        if let per = words.firstIndex(of: "per"), per > 0, per < words.count - 1, let target = relation(words[..<per].joined(separator: " ")),
            let group = column(words[(per + 1)...].joined(separator: " "), in: target)
        {
            return "SELECT \(group.name), count(*) AS count FROM \(qualified(target)) GROUP BY \(group.name) ORDER BY count DESC"
        }
        throw NeedsModel(description: """
            this question needs a language model: the offline translator answers "how many X", "list X", "top N X by Y" and "X per Y" \
            over \(schema.relations.map(\.name).joined(separator: ", "))
            """)
    }

    /// The phrases that name a relation: its name in words, singular or plural, and the last
    /// word of a compound name for runs (`agent_runs`: "agent runs", "runs", "executions").
    static func candidates(of relation: SqlSchema.Relation) -> Set<String> {
        let spoken = relation.name.replacingOccurrences(of: "_", with: " ")
        var names: Set<String> = [normalize(spoken)]
        if relation.name == "agent_runs" { names.formUnion(["run", "execution", "agent execution"]) }
        if relation.name == "sandbox_runs" { names.formUnion(["sandbox execution", "program", "python run"]) }
        return names
    }

    /// Lower-case words, singular, without articles.
    static func normalize(_ phrase: String) -> String {
        phrase.lowercased().split(separator: " ").filter { !["the", "a", "an", "all", "my", "are", "there", "of"].contains($0) }
            .map { word -> String in
                if word.hasSuffix("ies") { return String(word.dropLast(3)) + "y" }
                if word.hasSuffix("s"), !word.hasSuffix("ss") { return String(word.dropLast()) }
                return String(word)
            }.joined(separator: " ")
    }
}
