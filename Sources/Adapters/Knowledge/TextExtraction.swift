import Commands
import Foundation

/// A document's text, as the chunker reads it: Markdown and plain text as they are, HTML with
/// its tags taken out (headings become Markdown headings, so sections survive), PDF through
/// `pdftotext` from poppler-utils.
public struct TextExtraction: Sendable {
    public var pdftotext: String
    /// How long `pdftotext` may run on one document.
    public var timeout: Duration

    public init(pdftotext: String = "/usr/bin/pdftotext", timeout: Duration = .seconds(60)) {
        self.pdftotext = pdftotext
        self.timeout = timeout
    }

    /// Why a document could not be read; the run fails with this reason.
    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The text, without NUL characters (which Postgres text cannot hold).
    public func text(of bytes: Data, mediaType: String) async throws -> String {
        try await extracted(bytes, mediaType: mediaType).replacingOccurrences(of: "\u{0}", with: "")
    }

    func extracted(_ bytes: Data, mediaType: String) async throws -> String {
        switch mediaType {
        case "text/plain", "text/markdown": return try Self.utf8(bytes)
        case "text/html": return Self.html(try Self.utf8(bytes))
        case "application/pdf": return try await pdf(bytes)
        default: throw Unreadable(description: "no extractor for \(mediaType)")
        }
    }

    static func utf8(_ bytes: Data) throws -> String {
        guard let text = String(data: bytes, encoding: .utf8) else { throw Unreadable(description: "the document is not UTF-8 text") }
        return text.replacingOccurrences(of: "\r\n", with: "\n")
    }

    // MARK: HTML

    /// The text of an HTML document: scripts, styles and comments dropped, block elements as
    /// paragraph breaks, `h1`…`h6` as Markdown headings, entities decoded.
    public static func html(_ html: String) -> String {
        var text = html
        for pattern in ["(?is)<!--.*?-->", "(?is)<script\\b.*?</script\\s*>", "(?is)<style\\b.*?</style\\s*>", "(?is)<head\\b.*?</head\\s*>"] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        for level in 1...6 {
            text = text.replacingOccurrences(
                of: "(?is)<h\(level)\\b[^>]*>(.*?)</h\(level)\\s*>", with: "\n\n\(String(repeating: "#", count: level)) $1\n\n", options: .regularExpression)
        }
        text = text.replacingOccurrences(
            of: "(?i)</?(p|div|section|article|li|ul|ol|table|tr|blockquote|pre|header|footer|main|nav|aside|h[1-6])\\b[^>]*>", with: "\n\n",
            options: .regularExpression)
        text = text.replacingOccurrences(of: "(?i)<br\\s*/?>", with: "\n", options: .regularExpression)
        text = text.replacingOccurrences(of: "(?s)<[^>]*>", with: "", options: .regularExpression)
        text = decodeEntities(text)
        // Runs of spaces within a line, and of blank lines, become one.
        text = text.replacingOccurrences(of: "[ \\t\\u00A0]+", with: " ", options: .regularExpression)
        text = text.replacingOccurrences(of: "(?m)^ +| +$", with: "", options: .regularExpression)
        text = text.replacingOccurrences(of: "\\n{3,}", with: "\n\n", options: .regularExpression)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let entities: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "mdash": "—", "ndash": "–", "hellip": "…"]

    static func decodeEntities(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var result = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            result += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            if let semi = after.prefix(10).firstIndex(of: ";") {
                let name = String(after[..<semi])
                var decoded: String?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    decoded = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else if name.hasPrefix("#") {
                    decoded = UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
                } else {
                    decoded = entities[name]
                }
                if let decoded {
                    result += decoded
                    rest = after[after.index(after: semi)...]
                    continue
                }
            }
            result += "&"
            rest = after
        }
        return result + rest
    }

    // MARK: PDF

    func pdf(_ bytes: Data) async throws -> String {
        guard FileManager.default.isExecutableFile(atPath: pdftotext) else {
            throw Unreadable(description: "\(pdftotext) is missing: install poppler-utils (make bootstrap does)")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("chronicle-pdf-\(UUID().uuidString).pdf")
        try bytes.write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: pdftotext)
        process.arguments = ["-enc", "UTF-8", "-nopgbrk", "-q", file.path, "-"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Read on a thread of its own: a blocking read on the concurrency pool stalls other work.
        let reading = Task {
            await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: output.fileHandleForReading.readDataToEndOfFile()) }.start()
            }
        }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var timedOut = false
        while process.isRunning {
            if !timedOut, ContinuousClock.now > deadline {
                timedOut = true
                process.terminate()
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        let text = await reading.value
        if timedOut { throw Unreadable(description: "pdftotext took longer than \(timeout)") }
        guard process.terminationStatus == 0 else { throw Unreadable(description: "the PDF could not be read (pdftotext exit \(process.terminationStatus))") }
        // pdftotext ends lines inside paragraphs; blank lines stay paragraph breaks.
        return String(decoding: text, as: UTF8.self).replacingOccurrences(of: "\u{0C}", with: "\n\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
