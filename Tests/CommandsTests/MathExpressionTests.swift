import Commands
import Foundation
import Testing

@Suite struct MathExpressionTests {
    @Test(arguments: [
        ("1 + 2 * 3", 7.0), ("(1 + 2) * 3", 9), ("2 ^ 3 ^ 2", 512), ("-2 ^ 2", -4), ("10 % 4", 2), ("7 / 2", 3.5),
        ("sqrt(16) + abs(-3)", 7), ("round(2.5)", 3), ("1.5e3", 1500), ("pi", Double.pi), ("--3", 3), ("2 ^ -1", 0.5),
    ])
    func evaluates(_ expression: String, _ expected: Double) throws {
        #expect(try MathExpression.evaluate(expression) == expected)
    }

    @Test(arguments: ["1 / 0", "2 +", "(1", "foo(2)", "1 2", "", "sqrt 4", "1e400 * 10"])
    func rejects(_ expression: String) {
        #expect(throws: MathExpression.Error.self) { try MathExpression.evaluate(expression) }
    }

    @Test func refusesDeepNestingInsteadOfOverflowingTheStack() {
        let deep = String(repeating: "(", count: 500) + "1" + String(repeating: ")", count: 500)
        #expect(throws: MathExpression.Error.self) { try MathExpression.evaluate(deep) }
    }

    @Test func formatsWholeNumbersWithoutAFraction() {
        #expect(MathExpression.format(42) == "42")
        #expect(MathExpression.format(3.5) == "3.5")
    }

    @Test func thePluginAnswersBadArgumentsAsAnErrorForTheModel() {
        let result = AgentPlugins.invoke("math.evaluate", arguments: "{\"expr\": 1}", now: Date())
        #expect(result.isError)
        #expect(AgentPlugins.invoke("math.evaluate", arguments: "{\"expression\": \"6*7\"}", now: Date()) == ("42", false))
    }

    @Test func timeNowAnswersTheGivenClockInUTC() {
        let result = AgentPlugins.invoke("time.now", arguments: "{}", now: Date(timeIntervalSince1970: 0))
        #expect(result == ("1970-01-01T00:00:00.000Z", false))
    }
}
