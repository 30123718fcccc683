import Foundation

/// A small arithmetic evaluator for the `math.evaluate` plugin: recursive descent over numbers,
/// `+ - * / % ^`, unary minus, parentheses, a few functions and constants. No `eval`, no
/// variables; input length and nesting are bounded so a model cannot make it work hard.
public enum MathExpression {
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    static let maxLength = 1_000
    static let maxDepth = 64

    public static func evaluate(_ text: String) throws -> Double {
        guard TextLimit(characters: 0...maxLength).admits(text) else { throw Error("expression longer than \(maxLength) characters") }
        var parser = Parser(Array(text.unicodeScalars))
        let value = try parser.expression()
        parser.skipSpaces()
        guard parser.index == parser.scalars.count else { throw Error("unexpected '\(parser.scalars[parser.index])' at \(parser.index + 1)") }
        guard value.isFinite else { throw Error("the result is not a finite number") }
        return value
    }

    /// Integers without a fraction, others with up to 12 significant digits.
    public static func format(_ value: Double) -> String {
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.12g", value)
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var index = 0
        var depth = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        mutating func skipSpaces() {
            while index < scalars.count, scalars[index].properties.isWhitespace { index += 1 }
        }

        mutating func peek() -> Unicode.Scalar? {
            skipSpaces()
            return index < scalars.count ? scalars[index] : nil
        }

        mutating func expression() throws -> Double {
            depth += 1
            defer { depth -= 1 }
            guard depth <= MathExpression.maxDepth else { throw Error("expression nested too deeply") }
            var value = try term()
            while let op = peek(), op == "+" || op == "-" {
                index += 1
                let rhs = try term()
                value = op == "+" ? value + rhs : value - rhs
            }
            return value
        }

        mutating func term() throws -> Double {
            var value = try unary()
            while let op = peek(), op == "*" || op == "/" || op == "%" {
                index += 1
                let rhs = try unary()
                switch op {
                case "*": value *= rhs
                case "/":
                    guard rhs != 0 else { throw Error("division by zero") }
                    value /= rhs
                default:
                    guard rhs != 0 else { throw Error("modulo by zero") }
                    value = value.truncatingRemainder(dividingBy: rhs)
                }
            }
            return value
        }

        /// Right-associative, binding tighter than a unary minus on its left (-2^2 = -4) and
        /// taking one on its right (2^-1 = 0.5).
        mutating func power() throws -> Double {
            let base = try primary()
            if peek() == "^" {
                index += 1
                return pow(base, try unary())
            }
            return base
        }

        mutating func unary() throws -> Double {
            if peek() == "-" {
                index += 1
                return -(try unary())
            }
            if peek() == "+" {
                index += 1
                return try unary()
            }
            return try power()
        }

        mutating func primary() throws -> Double {
            guard let next = peek() else { throw Error("unexpected end of expression") }
            if next == "(" {
                index += 1
                let value = try expression()
                guard peek() == ")" else { throw Error("missing ')'") }
                index += 1
                return value
            }
            if next.properties.numericType != nil || next == "." { return try number() }
            if next.properties.isAlphabetic { return try call() }
            throw Error("unexpected '\(next)' at \(index + 1)")
        }

        mutating func number() throws -> Double {
            let start = index
            while index < scalars.count, scalars[index].properties.numericType != nil || scalars[index] == "." { index += 1 }
            if index < scalars.count, scalars[index] == "e" || scalars[index] == "E" {
                var probe = index + 1
                if probe < scalars.count, scalars[probe] == "-" || scalars[probe] == "+" { probe += 1 }
                if probe < scalars.count, scalars[probe].properties.numericType != nil {
                    index = probe
                    while index < scalars.count, scalars[index].properties.numericType != nil { index += 1 }
                }
            }
            let text = String(String.UnicodeScalarView(scalars[start..<index]))
            guard let value = Double(text) else { throw Error("'\(text)' is not a number") }
            return value
        }

        mutating func call() throws -> Double {
            let start = index
            while index < scalars.count, scalars[index].properties.isAlphabetic || scalars[index].properties.numericType != nil { index += 1 }
            let name = String(String.UnicodeScalarView(scalars[start..<index])).lowercased()
            switch name {
            case "pi": return Double.pi
            case "e": return M_E
            default: break
            }
            let functions: [String: (Double) -> Double] = [
                "sqrt": { $0.squareRoot() }, "abs": { Swift.abs($0) }, "round": { $0.rounded() }, "floor": { $0.rounded(.down) },
                "ceil": { $0.rounded(.up) }, "ln": { Foundation.log($0) }, "log10": { Foundation.log10($0) },
                "sin": { Foundation.sin($0) }, "cos": { Foundation.cos($0) }, "tan": { Foundation.tan($0) },
            ]
            guard let function = functions[name] else { throw Error("unknown function or constant '\(name)'") }
            guard peek() == "(" else { throw Error("'\(name)' needs parentheses") }
            index += 1
            let argument = try expression()
            guard peek() == ")" else { throw Error("missing ')' after \(name)(") }
            index += 1
            return function(argument)
        }
    }
}
