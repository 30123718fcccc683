import Adapters
import Foundation
import Testing

/// The validator on its own: the attack corpus is refused with a readable rule, the legitimate
/// corpus is accepted (no false refusal). `SqlCorpus` is shared with the execution-layer tests,
/// which run the same attacks with the validator bypassed.
@Suite struct SqlValidatorTests {
    static let validator = SqlValidator(policy: SqlCorpus.policy)

    @Test(arguments: SqlCorpus.attacks)
    func everyAttackIsRefusedWithAReadableRule(_ attack: SqlCorpus.Attack) {
        let violations = Self.validator.check(attack.sql)
        #expect(!violations.isEmpty, "admitted: \(attack.name)")
        #expect(violations.contains { $0.rule == attack.rule }, "\(attack.name): \(violations)")
        #expect(violations.allSatisfy { !$0.detail.isEmpty })
    }

    @Test func theLegitimateCorpusIsAcceptedWithoutOneFalseRefusal() {
        #expect(SqlCorpus.legitimate.count >= 40)
        for sql in SqlCorpus.legitimate {
            let violations = Self.validator.check(sql)
            #expect(violations.isEmpty, "refused: \(sql)\n\(violations)")
        }
    }

    @Test func aParseErrorSaysWhere() {
        let violations = Self.validator.check("SELECT FROM WHERE")
        #expect(violations.first?.rule == "sql.parse_error")
        #expect(violations.first?.detail.contains("at character") == true, "\(violations)")
    }

    @Test func everyRuleThatFiredIsReported() {
        let rules = Set(Self.validator.check("SELECT pg_sleep(1), x::regclass FROM pg_catalog.pg_authid FOR UPDATE").map(\.rule))
        #expect(rules == ["sql.function_not_allowed", "sql.type_not_allowed", "sql.system_catalog", "sql.locking_clause"])
    }

    @Test func aDeepStatementIsRefusedWithoutExhaustingTheStack() {
        // Parentheses leave no trace in the tree; nested calls do.
        let deep = "SELECT " + String(repeating: "abs(", count: 400) + "1" + String(repeating: ")", count: 400)
        let violations = Self.validator.check(deep)
        #expect(violations.contains { ["sql.too_deep", "sql.parse_error"].contains($0.rule) }, "\(violations)")
        #expect(Self.validator.check("SELECT " + String(repeating: "(", count: 900) + "1" + String(repeating: ")", count: 900)).isEmpty)
    }
}
