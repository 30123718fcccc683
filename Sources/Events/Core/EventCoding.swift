import Foundation
import Synchronization

/// The one JSON shape every stored payload and metadata document uses: snake_case keys, ISO 8601
/// dates with fractional seconds, sorted keys (so equal payloads are equal bytes).
public enum EventCoding {
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom(SnakeCaseKeys.convert)
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 date: \(text)")
            }
            return date
        }
        return decoder
    }

    public static func encode<T: Encodable>(_ value: T) throws -> Data {
        try makeEncoder().encode(value)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try makeDecoder().decode(type, from: data)
    }
}

/// `convertFromSnakeCase`, with each key's conversion remembered: Foundation converts every key of
/// every object it decodes again (splitting, lowercasing and capitalising), and that was a third of
/// decoding an event (perf, a read model's rebuild). The conversion itself is Foundation's: a key
/// seen for the first time is converted by decoding a one-key object with `.convertFromSnakeCase`.
/// Dictionary keys are not keys of a type, and Foundation converts them under neither strategy.
enum SnakeCaseKeys {
    /// Distinct field names are few; a key past this many is converted but not kept.
    static let capacity = 4_096
    private static let converted = Mutex<[String: String]>([:])

    @Sendable static func convert(_ path: [any CodingKey]) -> any CodingKey {
        guard let key = path.last else { return Key(stringValue: "") }
        return Key(stringValue: convert(key.stringValue))
    }

    static func convert(_ key: String) -> String {
        // A key without an underscore is one word: Foundation leaves it as it is.
        guard key.utf8.contains(UInt8(ascii: "_")) else { return key }
        if let known = converted.withLock({ $0[key] }) { return known }
        let result = foundation(key)
        converted.withLock { if $0.count < capacity { $0[key] = result } }
        return result
    }

    /// Foundation's own conversion of `key`.
    static func foundation(_ key: String) -> String {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let object = try? JSONEncoder().encode([key: 0]), let probe = try? decoder.decode(Probe.self, from: object) else { return key }
        return probe.key ?? key
    }

    private struct Probe: Decodable {
        let key: String?
        init(from decoder: any Decoder) throws {
            key = try decoder.container(keyedBy: Key.self).allKeys.first?.stringValue
        }
    }

    struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// ISO 8601 with milliseconds, UTC: `2026-01-05T10:00:00.123Z`.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        // Dates are doubles; a formatter truncates .123 that is really .12299999 to .122. Round
        // to whole milliseconds once, then print seconds and milliseconds from that integer.
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (seconds, fraction) = millis.quotientAndRemainder(dividingBy: 1000)
        let adjusted = fraction < 0 ? (seconds - 1, fraction + 1000) : (seconds, fraction)
        var time = time_t(adjusted.0)
        var parts = tm()
        gmtime_r(&time, &parts)
        // Written digit by digit: `String(format:)` cost more than the rest of encoding a
        // response that holds two timestamps. Years outside 0...9999 keep the formatter.
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else {
            return String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(adjusted.1))
        }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var rest = value
                for index in stride(from: offset + width - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(48 + rest % 10)
                    rest /= 10
                }
            }
            put(year, 4, at: 0)
            buffer[4] = 0x2D
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            buffer[7] = 0x2D
            put(Int(parts.tm_mday), 2, at: 8)
            buffer[10] = 0x54
            put(Int(parts.tm_hour), 2, at: 11)
            buffer[13] = 0x3A
            put(Int(parts.tm_min), 2, at: 14)
            buffer[16] = 0x3A
            put(Int(parts.tm_sec), 2, at: 17)
            buffer[19] = 0x2E
            put(Int(adjusted.1), 3, at: 20)
            buffer[23] = 0x5A
            return 24
        }
    }

    public static func parse(_ text: String) -> Date? {
        // The form `format` writes, read by hand: the format style cost more than the rest of
        // decoding an event, and every rebuild decodes every event. Anything else goes to it.
        if let date = parseFormatted(text) { return date }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` exactly (what `format` writes), else nil.
    static func parseFormatted(_ text: String) -> Date? {
        var utf8 = text.utf8
        return utf8.withContiguousStorageIfAvailable { bytes -> Date? in
            guard bytes.count == 24, bytes[4] == 0x2D, bytes[7] == 0x2D, bytes[10] == 0x54, bytes[13] == 0x3A, bytes[16] == 0x3A,
                bytes[19] == 0x2E, bytes[23] == 0x5A
            else { return nil }
            func number(_ from: Int, _ count: Int) -> Int64? {
                var value: Int64 = 0
                for index in from..<(from + count) {
                    let digit = Int64(bytes[index]) - 48
                    guard (0...9).contains(digit) else { return nil }
                    value = value * 10 + digit
                }
                return value
            }
            guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
                let minute = number(14, 2), let second = number(17, 2), let millis = number(20, 3),
                (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
            else { return nil }
            // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian, UTC.
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yearOfEra = y - era * 400
            let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
            let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
            let days = era * 146_097 + dayOfEra - 719_468
            let total = ((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000) + millis
            return Date(timeIntervalSince1970: Double(total) / 1_000)
        } ?? nil
    }
}
