import Foundation

/// Keeps U+0000 through PostgreSQL, which refuses it in `text` and in `jsonb` strings alike. A
/// program may print `a\0b`, a model may answer it; the probe's `print('a\x00b')` made the event
/// append fail, the worker die and the run go again. Every string Postgres would refuse is stored
/// escaped, losslessly, and restored on read:
///
/// - a string that holds U+0000, or starts with the marker U+FDD0, is stored as the marker
///   followed by the string with `%` written `%25` and U+0000 written `%00`;
/// - every other string is stored as it is, so the stored form is readable and queryable, and
///   nothing stored before this codec existed changes meaning (no such string held U+0000).
///
/// U+FDD0 is a noncharacter, which Unicode reserves for a program's internal use; a string that
/// starts with one is escaped too, so the mapping stays one-to-one whatever the input.
public enum PostgresText {
    // Built from its value: Swift refuses noncharacters in literals. Compared as a scalar, never
    // as a Character: a combining mark after it would make a different grapheme.
    static let marker = Unicode.Scalar(0xFDD0)!
    static let markerBytes: [UInt8] = Array(String(marker).utf8)

    static func startsWithMarker(_ text: String) -> Bool { text.unicodeScalars.first == marker }

    /// A float8 as Postgres reads it back exactly: Swift's shortest round-trip digits, and
    /// `NaN`, `Infinity` and `-Infinity` as Postgres spells them (Swift writes `nan` and `inf`).
    static func float8(_ number: Double) -> String {
        if number.isFinite { return "\(number)" }
        return number.isNaN ? "NaN" : number > 0 ? "Infinity" : "-Infinity"
    }

    /// The form to store.
    public static func encode(_ text: String) -> String {
        guard text.utf8.contains(0) || startsWithMarker(text) else { return text }
        var escaped = String(marker)
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\0": escaped += "%00"
            case "%": escaped += "%25"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// The text that was given to `encode`.
    public static func decode(_ stored: String) -> String {
        guard startsWithMarker(stored) else { return stored }
        let scalars = Array(stored.unicodeScalars.dropFirst())
        var text = String.UnicodeScalarView()
        text.reserveCapacity(scalars.count)
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            // `%` then two scalars: 00 is U+0000, 25 is `%`. Nothing else was escaped.
            if scalar == "%", index + 2 < scalars.count {
                let (first, second) = (scalars[index + 1], scalars[index + 2])
                if first == "0" && second == "0" || first == "2" && second == "5" {
                    text.append(first == "0" ? "\0" : "%")
                    index += 3
                    continue
                }
            }
            text.append(scalar)
            index += 1
        }
        return String(text)
    }

    /// JSON text to store as `jsonb`: every string literal, keys included, as `encode` would
    /// store it. Numbers and layout are left byte for byte.
    public static func encodeJSON(_ json: Data) -> Data {
        // JSONEncoder writes U+0000 as the escape \u0000 and U+FDD0 as its UTF-8 bytes.
        guard json.range(of: Data("\\u0000".utf8)) != nil || json.range(of: Data(markerBytes)) != nil else { return json }
        return rewriteStrings(json) { literal in
            let value = try? JSONDecoder().decode(String.self, from: Data(("\"" + literal + "\"").utf8))
            guard let value, value.utf8.contains(0) || startsWithMarker(value) else { return literal }
            return jsonBody(encode(value))
        }
    }

    /// The JSON text that was given to `encodeJSON`, from `jsonb::text`.
    public static func decodeJSON(_ json: Data) -> Data {
        guard containsMarker(json) else { return json }
        return rewriteStrings(json) { literal in
            guard startsWithMarker(literal), let value = try? JSONDecoder().decode(String.self, from: Data(("\"" + literal + "\"").utf8))
            else { return literal }
            return jsonBody(decode(value))
        }
    }

    /// Whether the marker's UTF-8 bytes occur in `data`: a scan for its first byte (memchr), which
    /// ordinary text rarely holds, then a look at the two after it. On every event read.
    static func containsMarker(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return false }
            var offset = 0
            while offset < raw.count, let found = memchr(base + offset, Int32(markerBytes[0]), raw.count - offset) {
                let at = base.distance(to: UnsafeRawPointer(found))
                if at + 2 < raw.count, raw[at + 1] == markerBytes[1], raw[at + 2] == markerBytes[2] { return true }
                offset = at + 1
            }
            return false
        }
    }

    /// A string as the inside of a JSON string literal.
    /// The quotes are cut as bytes: a combining mark after the opening quote would make one
    /// grapheme with it.
    static func jsonBody(_ text: String) -> String {
        let encoded = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: encoded.dropFirst().dropLast(), as: UTF8.self)
    }

    /// Calls `body` with the inside of every string literal of `json` (escapes as written) and
    /// puts back what it returns.
    static func rewriteStrings(_ json: Data, _ body: (String) -> String) -> Data {
        var out = Data()
        out.reserveCapacity(json.count + 16)
        let bytes = [UInt8](json)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\"") else {
                out.append(byte)
                index += 1
                continue
            }
            var end = index + 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") {
                end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
            }
            let literal = String(decoding: bytes[(index + 1)..<min(end, bytes.count)], as: UTF8.self)
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: Array(body(literal).utf8))
            out.append(UInt8(ascii: "\""))
            index = end + 1
        }
        return out
    }
}
