import Commands
import Events
import Foundation

/// The first layer of Text-to-SQL's defence: a statement is admitted only if PostgreSQL's own
/// grammar parses it into exactly one `SELECT` built from node types, functions, operators and
/// types on allow-lists, reading relations of the exposed schemas only. Everything unknown is
/// refused (fail closed), and every rule that fired is reported, each with a readable reason.
/// Nothing is rewritten: the bytes that run are the bytes that were checked.
public struct SqlValidator: Sendable {
    /// One refusal: a stable rule name and what it found.
    public struct Violation: Sendable, Equatable, Codable, CustomStringConvertible {
        public var rule: String
        public var detail: String
        public init(rule: String, detail: String) {
            self.rule = rule
            self.detail = detail
        }
        public var description: String { "\(rule): \(detail)" }
    }

    public struct Policy: Sendable {
        /// Schemas a query may read, in search order.
        public var schemas: [String]
        /// The relations it may read, as `schema.name`; nil admits any relation of the schemas.
        public var relations: Set<String>?
        public var maximumBytes = 65_536
        public var maximumDepth = 200

        public init(schemas: [String], relations: Set<String>? = nil) {
            self.schemas = schemas
            self.relations = relations
        }
    }

    public let policy: Policy

    public init(policy: Policy) {
        self.policy = policy
    }

    /// Functions a query may call: aggregates, window functions and pure scalar functions. No
    /// function that reads files, sleeps, locks, signals, notifies, changes settings, touches
    /// sequences or large objects, or runs SQL from a string.
    public static let functions: Set<String> = [
        // aggregates
        "count", "sum", "avg", "min", "max", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
        "percentile_cont", "percentile_disc", "mode", "string_agg", "array_agg", "bool_and", "bool_or", "every", "corr",
        "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "jsonb_agg", "json_agg", "jsonb_object_agg", "json_object_agg",
        // window functions
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value",
        "nth_value",
        // numbers
        "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "power", "pow", "exp", "ln", "log", "log10",
        "mod", "div", "greatest", "least", "width_bucket",
        // text
        "lower", "upper", "length", "char_length", "character_length", "octet_length", "substring", "substr", "trim", "btrim",
        "ltrim", "rtrim", "left", "right", "replace", "split_part", "position", "strpos", "concat", "concat_ws", "initcap", "lpad",
        "rpad", "reverse", "starts_with", "md5", "to_char", "to_number", "format", "regexp_replace", "regexp_match",
        "regexp_matches", "translate", "repeat",
        // dates and times
        "now", "date_trunc", "date_part", "extract", "age", "to_date", "to_timestamp", "make_date", "make_interval",
        "make_timestamp", "justify_days", "justify_hours", "justify_interval", "date_bin", "isfinite", "timezone",
        // json
        "jsonb_array_length", "json_array_length", "jsonb_typeof", "json_typeof", "jsonb_extract_path", "jsonb_extract_path_text",
        "json_extract_path", "json_extract_path_text", "jsonb_build_object", "json_build_object", "jsonb_build_array",
        "json_build_array", "to_jsonb", "to_json", "jsonb_object_keys", "jsonb_array_elements", "jsonb_array_elements_text",
        "jsonb_each", "jsonb_each_text",
        // arrays, sets, conditionals
        "array_length", "cardinality", "unnest", "array_position", "array_to_string", "string_to_array", "generate_series",
        "nullif", "coalesce",
    ]

    /// Operators, by name.
    public static let operators: Set<String> = [
        "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "||", "~~", "!~~", "~~*", "!~~*", "~", "!~", "~*",
        "!~*", "->", "->>", "#>", "#>>", "@>", "<@", "?", "?|", "?&", "&&", "BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC",
        "NOT BETWEEN SYMMETRIC",
    ]

    /// Types a value may be cast to. No `reg*` type: those read the catalogs by name.
    public static let types: Set<String> = [
        "int", "int2", "int4", "int8", "integer", "smallint", "bigint", "numeric", "decimal", "real", "float4", "float8",
        "double precision", "text", "varchar", "char", "bpchar", "bool", "boolean", "date", "timestamp", "timestamptz", "time",
        "timetz", "interval", "uuid", "json", "jsonb",
    ]

    /// Node types a statement may be made of.
    static let nodes: Set<String> = [
        "SelectStmt", "ResTarget", "ColumnRef", "String", "A_Star", "A_Const", "Integer", "Float", "Boolean", "A_Expr", "BoolExpr",
        "FuncCall", "TypeCast", "RangeVar", "JoinExpr", "SortBy", "WindowDef", "WithClause", "CommonTableExpr", "CaseExpr",
        "CaseWhen", "CoalesceExpr", "NullTest", "BooleanTest", "SubLink", "RangeSubselect", "A_ArrayExpr", "MinMaxExpr",
        "SQLValueFunction", "List", "A_Indirection", "A_Indices", "RowExpr", "GroupingSet", "NamedArgExpr", "RangeFunction",
        "Alias", "TypeName",
    ]

    /// Date and time value functions (`current_date`, …); not `current_user` and its kin.
    static let valueFunctions: Set<String> = [
        "SVFOP_CURRENT_DATE", "SVFOP_CURRENT_TIME", "SVFOP_CURRENT_TIME_N", "SVFOP_CURRENT_TIMESTAMP", "SVFOP_CURRENT_TIMESTAMP_N",
        "SVFOP_LOCALTIME", "SVFOP_LOCALTIME_N", "SVFOP_LOCALTIMESTAMP", "SVFOP_LOCALTIMESTAMP_N",
    ]

    static let catalogs: Set<String> = ["pg_catalog", "information_schema", "pg_toast"]

    /// Every rule the statement breaks; empty when it may run.
    public func check(_ sql: String) -> [Violation] {
        if sql.utf8.count > policy.maximumBytes {
            return [Violation(rule: "sql.too_long", detail: "the statement is \(sql.utf8.count) bytes; at most \(policy.maximumBytes)")]
        }
        if sql.contains("\u{0}") { return [Violation(rule: "sql.nul", detail: "the statement holds a NUL character")] }
        let tree: JSONValue
        switch SqlParser.parse(sql) {
        case .success(let parsed): tree = parsed
        case .failure(let error): return [Violation(rule: "sql.parse_error", detail: error.description)]
        }
        guard case .object(let root) = tree, case .array(let statements)? = root["stmts"] else {
            return [Violation(rule: "sql.parse_error", detail: "the parse tree has no statements")]
        }
        guard statements.count == 1 else {
            return [Violation(rule: "sql.one_statement", detail: "exactly one statement may run; this has \(statements.count)")]
        }
        guard case .object(let raw) = statements[0], case .object(let statement)? = raw["stmt"], statement.count == 1,
            let (kind, _) = statement.first
        else { return [Violation(rule: "sql.parse_error", detail: "the statement could not be read")] }
        guard kind == "SelectStmt" else {
            return [Violation(rule: "sql.select_only", detail: "only a SELECT may run; this is \(Self.readable(kind))")]
        }
        var walk = Walk(validator: self)
        walk.visit(.object(statement))
        return walk.violations
    }

    /// `InsertStmt` → "an INSERT".
    static func readable(_ node: String) -> String {
        let name = node.hasSuffix("Stmt") ? String(node.dropLast(4)) : node
        return "a \(name.uppercased()) statement"
    }

    /// One walk over a parse tree with an explicit stack (no recursion, so depth is bounded by the
    /// policy, not by the thread's stack).
    struct Walk {
        let validator: SqlValidator
        var violations: [Violation] = []
        /// CTE names, visible to the relations of the whole statement (a conservative scope).
        var cteNames: Set<String> = []

        mutating func refuse(_ rule: String, _ detail: String) {
            let violation = Violation(rule: rule, detail: detail)
            if !violations.contains(violation) { violations.append(violation) }
        }

        mutating func visit(_ root: JSONValue) {
            // CTE names first: a relation may name one defined later in the text.
            collectCTEs(root)
            var stack: [(JSONValue, Int)] = [(root, 0)]
            while let (value, depth) = stack.popLast() {
                if depth > validator.policy.maximumDepth {
                    refuse("sql.too_deep", "the statement nests deeper than \(validator.policy.maximumDepth) levels")
                    return
                }
                switch value {
                case .array(let items):
                    for item in items { stack.append((item, depth + 1)) }
                case .object(let fields):
                    if fields.count == 1, let (name, body) = fields.first, name.first?.isUppercase == true, case .object(let node) = body {
                        check(node: name, node)
                    }
                    for (_, child) in fields { stack.append((child, depth + 1)) }
                default:
                    break
                }
            }
        }

        mutating func collectCTEs(_ value: JSONValue) {
            var stack = [value]
            while let next = stack.popLast() {
                switch next {
                case .array(let items): stack.append(contentsOf: items)
                case .object(let fields):
                    if case .object(let cte)? = fields["CommonTableExpr"], case .string(let name)? = cte["ctename"] { cteNames.insert(name) }
                    stack.append(contentsOf: fields.values)
                default: break
                }
            }
        }

        static func strings(_ value: JSONValue?) -> [String] {
            guard case .array(let items)? = value else { return [] }
            return items.compactMap { item in
                if case .object(let wrapper) = item, case .object(let string)? = wrapper["String"], case .string(let text)? = string["sval"] {
                    return text
                }
                return nil
            }
        }

        mutating func check(node name: String, _ node: [String: JSONValue]) {
            // Clauses whose parent reports them (SELECT INTO, FOR UPDATE) in its own words.
            if name == "IntoClause" || name == "LockingClause" { return }
            guard SqlValidator.nodes.contains(name) else {
                if name.hasSuffix("Stmt") {
                    refuse("sql.select_only", "the statement holds \(SqlValidator.readable(name))")
                } else if name == "ParamRef" {
                    refuse("sql.parameter", "parameters ($1) are not accepted: write the values into the statement")
                } else {
                    refuse("sql.node_not_allowed", "\(name) is not allowed in a query")
                }
                return
            }
            switch name {
            case "SelectStmt":
                if node["intoClause"] != nil { refuse("sql.select_into", "SELECT INTO would create a table") }
                if node["lockingClause"] != nil { refuse("sql.locking_clause", "FOR UPDATE/SHARE would take locks") }
                if case .object(let with)? = node["withClause"], with["recursive"] == .bool(true) {
                    refuse("sql.recursive_cte", "WITH RECURSIVE is refused: it can run without end")
                }
            case "CommonTableExpr":
                if case .object(let query)? = node["ctequery"], let kind = query.keys.first, kind != "SelectStmt" {
                    refuse("sql.data_modifying_cte", "the CTE \(Self.name(node["ctename"])) is \(SqlValidator.readable(kind))")
                }
            case "FuncCall":
                let parts = Self.strings(node["funcname"])
                let function = parts.last?.lowercased() ?? ""
                let schema = parts.count > 1 ? parts[parts.count - 2] : nil
                if parts.count > 2 || (schema != nil && schema != "pg_catalog") || !SqlValidator.functions.contains(function) {
                    refuse("sql.function_not_allowed", "the function \(parts.joined(separator: ".")) is not on the allow-list")
                }
            case "RangeFunction":
                // Functions in FROM: only set-returning ones of the allow-list, checked as FuncCall.
                break
            case "A_Expr":
                let parts = Self.strings(node["name"])
                if parts.count > 2 || (parts.count == 2 && parts[0] != "pg_catalog") || !SqlValidator.operators.contains(parts.last ?? "") {
                    refuse("sql.operator_not_allowed", "the operator \(parts.joined(separator: ".")) is not on the allow-list")
                }
            case "TypeCast", "TypeName":
                let typeName: [String: JSONValue]? =
                    if name == "TypeName" { node } else if case .object(let type)? = node["typeName"] { type } else { nil }
                let parts = Self.strings(typeName?["names"])
                let type = parts.last?.lowercased() ?? ""
                let schema = parts.count > 1 ? parts[parts.count - 2] : nil
                if parts.count > 2 || (schema != nil && schema != "pg_catalog") || !SqlValidator.types.contains(type) {
                    refuse("sql.type_not_allowed", "the type \(parts.joined(separator: ".")) is not on the allow-list")
                }
            case "SQLValueFunction":
                if case .string(let op)? = node["op"], !SqlValidator.valueFunctions.contains(op) {
                    refuse("sql.function_not_allowed", "\(op.replacingOccurrences(of: "SVFOP_", with: "").lowercased()) is not allowed")
                }
            case "RangeVar":
                checkRelation(node)
            default:
                break
            }
        }

        static func name(_ value: JSONValue?) -> String {
            if case .string(let text)? = value { return text }
            return "?"
        }

        mutating func checkRelation(_ node: [String: JSONValue]) {
            let relation = Self.name(node["relname"])
            let schema: String? = if case .string(let text)? = node["schemaname"] { text } else { nil }
            if node["catalogname"] != nil {
                refuse("sql.relation_not_allowed", "\(relation) names a database; only this one's exposed schemas can be read")
                return
            }
            if let schema {
                if SqlValidator.catalogs.contains(schema) || schema.hasPrefix("pg_") {
                    refuse("sql.system_catalog", "\(schema).\(relation) is a system catalog")
                } else if !validator.policy.schemas.contains(schema) {
                    refuse("sql.relation_not_allowed", "the schema \(schema) is not exposed")
                } else if let relations = validator.policy.relations, !relations.contains("\(schema).\(relation)") {
                    refuse("sql.relation_not_allowed", "\(schema).\(relation) is not an exposed relation")
                }
                return
            }
            if cteNames.contains(relation) { return }
            if relation.hasPrefix("pg_") {
                refuse("sql.system_catalog", "\(relation) is a system catalog")
                return
            }
            if let relations = validator.policy.relations, !validator.policy.schemas.contains(where: { relations.contains("\($0).\(relation)") }) {
                refuse("sql.relation_not_allowed", "\(relation) is not an exposed relation")
            }
        }
    }
}

extension SqlValidator: SqlValidating {
    public func violations(of sql: String) -> [SqlRuleViolation] {
        check(sql).map { SqlRuleViolation(rule: $0.rule, detail: $0.detail) }
    }
}
