import Crypto
import Events
import Foundation

/// One piece of a document, as indexed and cited.
public struct Chunk: Sendable, Equatable {
    public var ordinal: Int
    /// The headings the chunk sits under, outermost first.
    public var headingPath: [String]
    /// Offsets in the document's text, in Unicode scalars (code points), end exclusive.
    public var start: Int
    public var end: Int
    public var text: String
    public var tokens: Int

    public init(ordinal: Int, headingPath: [String], start: Int, end: Int, text: String, tokens: Int) {
        self.ordinal = ordinal
        self.headingPath = headingPath
        self.start = start
        self.end = end
        self.text = text
        self.tokens = tokens
    }

    /// sha256 of the text, hex: what an answer records and a later read compares.
    public var contentHash: String { SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined() }

    /// The text an embedder sees: the heading path, then the chunk.
    public var embeddingInput: String { headingPath.isEmpty ? text : headingPath.joined(separator: " > ") + "\n\n" + text }

    /// The chunk's id: a function of where it comes from and how it was cut, so a retried or
    /// redelivered indexing run writes the same rows.
    public static func id(document: UUID, version: Int, settings: ChunkingSettings, ordinal: Int) -> UUID {
        DeterministicID.v5(
            namespace: DeterministicID.eventNamespace,
            name: "chunk/\(document.uuidString.lowercased())/\(version)/\(settings.fingerprint)/\(ordinal)")
    }
}

/// Structure-aware chunking: sections by heading (Markdown `#` headings), then paragraphs (blank
/// lines), then sentences, then words for a sentence longer than a chunk. Paragraphs of one
/// section are packed together up to the limit; a chunk never spans two sections. The next chunk
/// of a section starts with the last sentences of the previous one, up to the overlap. Every
/// chunk is a contiguous range of the text, so its offsets point at exactly what it says.
public struct Chunker: Sendable {
    public let settings: ChunkingSettings
    /// Counts the tokens of a piece of text (the embedder's tokenizer, or an estimate).
    public let countTokens: @Sendable (Substring) -> Int

    public init(settings: ChunkingSettings, countTokens: @escaping @Sendable (Substring) -> Int = Chunker.estimateTokens) {
        self.settings = settings
        self.countTokens = countTokens
    }

    /// About four characters a token, for English: the estimate where no tokenizer is at hand.
    public static let estimateTokens: @Sendable (Substring) -> Int = { text in max(1, (text.unicodeScalars.count + 3) / 4) }

    /// A run of text the packer treats as one piece, with its offsets in scalars.
    struct Piece {
        var start: Int
        var end: Int
        var tokens: Int
    }

    struct Section {
        var headingPath: [String]
        var paragraphs: [Range<Int>]
    }

    public func chunks(of text: String) -> [Chunk] {
        let scalars = Array(text.unicodeScalars)
        var result: [Chunk] = []
        for section in Self.sections(scalars) {
            var pieces: [Piece] = []
            for paragraph in section.paragraphs {
                let tokens = count(scalars, paragraph.lowerBound, paragraph.upperBound)
                if tokens <= settings.maxTokens {
                    pieces.append(Piece(start: paragraph.lowerBound, end: paragraph.upperBound, tokens: tokens))
                } else {
                    pieces += sentencePieces(scalars, paragraph)
                }
            }
            pack(pieces, scalars: scalars, headingPath: section.headingPath, into: &result)
        }
        return result
    }

    private func count(_ scalars: [Unicode.Scalar], _ start: Int, _ end: Int) -> Int {
        countTokens(Substring(String(String.UnicodeScalarView(scalars[start..<end]))))
    }

    /// Packs pieces into chunks of at most `maxTokens`, each next chunk starting with the tail of
    /// the previous one (whole pieces, up to `overlapTokens`).
    private func pack(_ pieces: [Piece], scalars: [Unicode.Scalar], headingPath: [String], into result: inout [Chunk]) {
        var index = 0
        while index < pieces.count {
            var end = index
            var tokens = 0
            while end < pieces.count, end == index || tokens + pieces[end].tokens <= settings.maxTokens {
                tokens += pieces[end].tokens
                end += 1
            }
            let start = pieces[index].start, stop = pieces[end - 1].end
            let text = String(String.UnicodeScalarView(scalars[start..<stop]))
            result.append(Chunk(
                ordinal: result.count, headingPath: headingPath, start: start, end: stop, text: text,
                tokens: count(scalars, start, stop)))
            guard end < pieces.count else { break }
            // Overlap: step back over whole pieces of the chunk just made, never to its start.
            var next = end
            var overlap = 0
            while next - 1 > index, overlap + pieces[next - 1].tokens <= settings.overlapTokens {
                overlap += pieces[next - 1].tokens
                next -= 1
            }
            index = next
        }
    }

    /// A paragraph too long for one chunk, as sentences; a sentence too long, as runs of words.
    private func sentencePieces(_ scalars: [Unicode.Scalar], _ paragraph: Range<Int>) -> [Piece] {
        var pieces: [Piece] = []
        for sentence in Self.sentences(scalars, paragraph) {
            let tokens = count(scalars, sentence.lowerBound, sentence.upperBound)
            if tokens <= settings.maxTokens {
                pieces.append(Piece(start: sentence.lowerBound, end: sentence.upperBound, tokens: tokens))
                continue
            }
            // Words, packed greedily; a single word longer than a chunk is cut by scalars.
            var start = sentence.lowerBound
            while start < sentence.upperBound {
                var end = start
                var best = start
                while end < sentence.upperBound {
                    var next = end
                    while next < sentence.upperBound, scalars[next].properties.isWhitespace { next += 1 }
                    while next < sentence.upperBound, !scalars[next].properties.isWhitespace { next += 1 }
                    if count(scalars, start, next) > settings.maxTokens { break }
                    best = next
                    end = next
                }
                if best == start {
                    best = start + 1
                    while best < sentence.upperBound, count(scalars, start, best + 1) <= settings.maxTokens { best += 1 }
                }
                pieces.append(Piece(start: start, end: best, tokens: count(scalars, start, best)))
                start = best
                while start < sentence.upperBound, scalars[start].properties.isWhitespace { start += 1 }
            }
        }
        return pieces
    }

    /// Sentences of a range: ends after `.`, `!`, `?` (or `。！？`) followed by whitespace, with
    /// closing quotes and brackets kept; leading whitespace skipped.
    static func sentences(_ scalars: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = range.lowerBound
        var index = range.lowerBound
        let enders: Set<Unicode.Scalar> = [".", "!", "?", "。", "！", "？"]
        let closers: Set<Unicode.Scalar> = ["\"", "'", ")", "]", "\u{201D}", "\u{2019}"]
        while index < range.upperBound {
            if enders.contains(scalars[index]) {
                var end = index + 1
                while end < range.upperBound, closers.contains(scalars[end]) { end += 1 }
                if end == range.upperBound || scalars[end].properties.isWhitespace || scalars[index].value > 0x3000 {
                    if end > start { result.append(start..<end) }
                    start = end
                    while start < range.upperBound, scalars[start].properties.isWhitespace { start += 1 }
                    index = start
                    continue
                }
            }
            index += 1
        }
        if start < range.upperBound {
            var end = range.upperBound
            while end > start, scalars[end - 1].properties.isWhitespace { end -= 1 }
            if end > start { result.append(start..<end) }
        }
        return result
    }

    /// Sections by Markdown ATX heading (`#` to `######`, outside fenced code), each with its
    /// heading path and its paragraphs (runs of non-blank lines; a fenced code block is one).
    static func sections(_ scalars: [Unicode.Scalar]) -> [Section] {
        var sections: [Section] = [Section(headingPath: [], paragraphs: [])]
        var path: [(level: Int, title: String)] = []
        var paragraphStart: Int?
        var paragraphEnd = 0
        var inFence = false
        func closeParagraph() {
            if let start = paragraphStart { sections[sections.count - 1].paragraphs.append(start..<paragraphEnd) }
            paragraphStart = nil
        }
        var lineStart = 0
        while lineStart < scalars.count {
            var lineEnd = lineStart
            while lineEnd < scalars.count, scalars[lineEnd] != "\n" { lineEnd += 1 }
            let line = String(String.UnicodeScalarView(scalars[lineStart..<lineEnd]))
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            var contentEnd = lineEnd
            while contentEnd > lineStart, scalars[contentEnd - 1].properties.isWhitespace { contentEnd -= 1 }
            if trimmed.hasPrefix("```") || trimmed.hasPrefix("~~~") {
                if paragraphStart == nil { paragraphStart = lineStart }
                paragraphEnd = contentEnd
                inFence.toggle()
                if !inFence { closeParagraph() }
            } else if inFence {
                paragraphEnd = max(paragraphEnd, contentEnd)
            } else if let heading = heading(trimmed) {
                closeParagraph()
                while let last = path.last, last.level >= heading.level { path.removeLast() }
                path.append(heading)
                sections.append(Section(headingPath: path.map(\.title), paragraphs: []))
            } else if trimmed.isEmpty {
                closeParagraph()
            } else {
                if paragraphStart == nil {
                    var start = lineStart
                    while start < contentEnd, scalars[start].properties.isWhitespace { start += 1 }
                    paragraphStart = start
                }
                paragraphEnd = contentEnd
            }
            lineStart = lineEnd + 1
        }
        closeParagraph()
        return sections.filter { !$0.paragraphs.isEmpty }
    }

    static func heading(_ line: String) -> (level: Int, title: String)? {
        let hashes = line.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes) else { return nil }
        let rest = line.dropFirst(hashes)
        guard rest.isEmpty || rest.first == " " || rest.first == "\t" else { return nil }
        var title = rest.trimmingCharacters(in: .whitespaces)
        while title.hasSuffix("#") { title.removeLast() }
        title = title.trimmingCharacters(in: .whitespaces)
        return title.isEmpty ? nil : (hashes, title)
    }
}
