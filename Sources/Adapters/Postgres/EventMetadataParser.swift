import Events
import Foundation

/// Reads an event's metadata (`jsonb::text` of a flat object of strings) without JSONDecoder,
/// which cost more than the rest of reading the row. Anything it does not expect (another kind of
/// value, a malformed text) goes to JSONDecoder, which decides as before; stored strings are
/// restored from their escaped form (`PostgresText`) either way.
enum EventMetadataParser {
    static func parse(_ json: Data) -> EventMetadata {
        let fast: EventMetadata?? = json.withUnsafeBytes { raw in
            var parser = Parser(bytes: raw.bindMemory(to: UInt8.self))
            return parser.metadata()
        }
        if let parsed = fast, let metadata = parsed { return metadata }
        return (try? EventCoding.decode(EventMetadata.self, from: PostgresText.decodeJSON(json))) ?? EventMetadata()
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        /// nil: not the simple shape; fall back.
        mutating func metadata() -> EventMetadata?? {
            var metadata = EventMetadata()
            skipSpace()
            guard take(UInt8(ascii: "{")) else { return nil }
            skipSpace()
            if take(UInt8(ascii: "}")) { return .some(metadata) }
            while true {
                skipSpace()
                guard let key = string() else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                var value: String?
                if bytes.count - index >= 4, bytes[index] == UInt8(ascii: "n"), bytes[index + 1] == UInt8(ascii: "u"),
                    bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l")
                {
                    index += 4
                } else {
                    guard let text = string() else { return nil }
                    value = PostgresText.decode(text)
                }
                switch key {
                // As EventCoding writes them (snake case). A key it does not know goes to
                // JSONDecoder, so a field added to EventMetadata is never dropped here.
                case "correlation_id": metadata.correlationID = value
                case "causation_id": metadata.causationID = value
                case "command_id": metadata.commandID = value
                case "user_id": metadata.userID = value
                case "tenant_id": metadata.tenantID = value
                default: return nil
                }
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                skipSpace()
                return index == bytes.count ? .some(metadata) : nil
            }
        }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x09 || bytes[index] == 0x0D {
                index += 1
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A JSON string; escapes other than the common ones (\uXXXX among them) fall back.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
                index += 1
            }
            return nil
        }
    }
}
