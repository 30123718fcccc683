import Commands
import Foundation
import Synchronization

/// The offline embedder: WordLlama's static token embeddings (`l2_supercat_256`, 32,000 tokens ×
/// 256 dimensions, fp16; MIT licence, Lee Miller 2024), read from the files of the `wordllama`
/// wheel on PyPI that the bootstrap unpacks. A text is tokenised with the model's own BPE
/// tokenizer (Llama 2's, byte fallback included), its token vectors are averaged and the mean is
/// scaled to unit length: what `WordLlama.embed(text, norm=True)` returns, with no network and no
/// Python. Golden tests hold it to the reference implementation's token ids and vectors.
public final class WordLlamaEmbedder: Embedder {
    public static let modelName = "wordllama-l2-supercat-256 (offline)"
    public let model = WordLlamaEmbedder.modelName
    public let dimensions: Int
    public let tokenizer: BPETokenizer
    /// Row-major, `vocabulary × dimensions`, converted from fp16 once.
    private let table: [Float]
    private let rows: Int

    /// Where the bootstrap puts the files, relative to the data folder.
    public static let defaultDirectoryName = "models/wordllama-0.4.0.post1"
    static let tokenizerFile = "l2_supercat_tokenizer_config.json"
    static let weightsFile = "l2_supercat_256.safetensors"

    public init(directory: URL) throws {
        let tokenizerURL = directory.appendingPathComponent(Self.tokenizerFile)
        let weightsURL = directory.appendingPathComponent(Self.weightsFile)
        for url in [tokenizerURL, weightsURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw EmbedderError.unavailable("\(url.path) is missing: run `make bootstrap` (eventstore/dev/install.sh unpacks the wordllama wheel)")
        }
        tokenizer = try BPETokenizer(json: Data(contentsOf: tokenizerURL))
        let tensor = try SafeTensors.float16Matrix(Data(contentsOf: weightsURL, options: .mappedIfSafe), name: "embedding.weight")
        rows = tensor.rows
        dimensions = tensor.columns
        table = tensor.values
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        texts.map { vector(for: $0) }
    }

    public func embedCounted(_ texts: [String]) async throws -> Embedded {
        var tokens = 0
        let vectors = texts.map { text in
            let ids = tokenizer.encode(text)
            tokens += ids.count
            return vector(of: ids)
        }
        return Embedded(vectors: vectors, tokens: tokens)
    }

    /// The unit-length mean of the text's token vectors (all zeros for an empty text).
    public func vector(for text: String) -> [Float] {
        vector(of: tokenizer.encode(text))
    }

    func vector(of ids: [Int32]) -> [Float] {
        var sum = [Float](repeating: 0, count: dimensions)
        guard !ids.isEmpty else { return sum }
        table.withUnsafeBufferPointer { table in
            sum.withUnsafeMutableBufferPointer { sum in
                for id in ids {
                    let row = min(max(Int(id), 0), rows - 1) * dimensions
                    for column in 0..<dimensions { sum[column] += table[row + column] }
                }
            }
        }
        return VectorMath.normalized(sum)
    }
}

extension WordLlamaEmbedder: PassageEmbedder {
    public func passageVectors(_ text: String, context: String, window: Int, stride: Int) -> [[Float]] {
        let ids = tokenizer.encode(text)
        guard !ids.isEmpty else { return [] }
        let window = max(1, window), stride = max(1, stride)
        var starts = Array(Swift.stride(from: 0, to: max(ids.count - window, 0), by: stride))
        starts.append(max(ids.count - window, 0))
        let contextIDs = context.isEmpty ? [] : tokenizer.encode(context)
        return table.withUnsafeBufferPointer { table in
            func row(_ id: Int32) -> Int { min(max(Int(id), 0), rows - 1) * dimensions }
            // One running sum slides over the text: each token is added once and taken out once.
            var sum = [Float](repeating: 0, count: dimensions)
            var passages: [[Float]] = []
            passages.reserveCapacity(starts.count)
            guard let rows = table.baseAddress else { return [] }
            let lanes = dimensions / 16 * 16
            /// `sum` += the row of `entering` − the row of `leaving`, 16 lanes at a time.
            func slide(_ sum: UnsafeMutablePointer<Float>, entering: Int32, leaving: Int32?) {
                let add = UnsafeRawPointer(rows + row(entering))
                let remove = leaving.map { UnsafeRawPointer(rows + row($0)) }
                let total = UnsafeMutableRawPointer(sum)
                var offset = 0
                while offset < lanes * 4 {
                    var lane = total.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) + add.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                    if let remove { lane -= remove.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) }
                    total.storeBytes(of: lane, toByteOffset: offset, as: SIMD16<Float>.self)
                    offset += 64
                }
                for column in lanes..<dimensions {
                    sum[column] += add.load(fromByteOffset: column * 4, as: Float.self) - (remove?.load(fromByteOffset: column * 4, as: Float.self) ?? 0)
                }
            }
            sum.withUnsafeMutableBufferPointer { buffer in
                guard let sum = buffer.baseAddress else { return }
                for id in contextIDs + ids.prefix(window) { slide(sum, entering: id, leaving: nil) }
                var current = 0
                for start in starts {
                    while current < start {
                        slide(sum, entering: ids[current + window], leaving: ids[current])
                        current += 1
                    }
                    passages.append(VectorMath.normalized(Array(buffer)))
                }
            }
            return passages
        }
    }
}

/// A byte-fallback BPE tokenizer read from a Hugging Face `tokenizer.json` of the Llama kind
/// (SentencePiece normalisation: `▁` prepended and for every space; no pre-tokenizer; ranked
/// merges; characters outside the vocabulary as `<0xXX>` byte tokens). Merges are applied lowest
/// rank first, leftmost first on ties, as the `tokenizers` library does, with a heap: linear in
/// the text's length up to a log factor.
public struct BPETokenizer: Sendable {
    let vocabulary: [String: Int32]
    /// (left id, right id) → (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let byteTokens: [Int32]
    let unknown: Int32
    /// True when no token holds `▁` after another character: then no merge crosses the start of
    /// a word, each word (a run of `▁` and what follows it) is encoded alone, and its ids can be
    /// kept and reused. Llama's vocabulary is so.
    let wordsAreIndependent: Bool
    private let words = WordCache()

    /// Words' ids, shared by every encode: text follows Zipf's law, so most words are seen
    /// before. Bounded: past `capacity` words, new ones are encoded without being kept.
    final class WordCache: Sendable {
        static let capacity = 200_000
        static let longestWord = 64
        let ids = Mutex<[String: [Int32]]>([:])
    }

    public var vocabularySize: Int { vocabulary.count }

    public init(json: Data) throws {
        struct File: Decodable {
            struct Model: Decodable {
                let type: String
                let vocab: [String: Int32]
                let merges: [String]
                let unk_token: String?
                let byte_fallback: Bool?
            }
            let model: Model
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: json) } catch {
            throw EmbedderError.unavailable("the tokenizer file is not a tokenizer.json: \(error)")
        }
        guard file.model.type == "BPE", file.model.byte_fallback == true else {
            throw EmbedderError.unavailable("the tokenizer is not a byte-fallback BPE")
        }
        vocabulary = file.model.vocab
        unknown = file.model.unk_token.flatMap { file.model.vocab[$0] } ?? 0
        var byteTokens: [Int32] = []
        for byte in 0..<256 {
            guard let id = file.model.vocab[String(format: "<0x%02X>", byte)] else {
                throw EmbedderError.unavailable("the tokenizer has no byte token for 0x\(String(byte, radix: 16))")
            }
            byteTokens.append(id)
        }
        self.byteTokens = byteTokens
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(file.model.merges.count)
        for (rank, merge) in file.model.merges.enumerated() {
            let parts = merge.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let left = vocabulary[String(parts[0])], let right = vocabulary[String(parts[1])],
                let merged = vocabulary[String(parts[0]) + String(parts[1])]
            else { continue }
            let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        self.merges = merges
        wordsAreIndependent = vocabulary.keys.allSatisfy { !$0.drop { $0 == "\u{2581}" }.contains("\u{2581}") }
    }

    /// The token ids of `text`, without special tokens: word by word, each word's ids kept for
    /// the next time, when the vocabulary allows it (`wordsAreIndependent`); the same ids as
    /// `encodeWhole`.
    public func encode(_ text: String) -> [Int32] {
        guard !text.isEmpty else { return [] }
        guard wordsAreIndependent else { return encodeWhole(text) }
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3)
        var word = String.UnicodeScalarView()
        var afterMarker = true
        func flush() {
            let key = String(word)
            if let kept = words.ids.withLock({ $0[key] }) {
                ids += kept
                return
            }
            var symbols: [Int32] = []
            symbols.reserveCapacity(word.count)
            for scalar in word { symbol(scalar, into: &symbols) }
            let merged = merge(symbols)
            ids += merged
            if word.count <= WordCache.longestWord {
                words.ids.withLock { if $0.count < WordCache.capacity { $0[key] = merged } }
            }
        }
        word.append("\u{2581}")
        for scalar in text.unicodeScalars {
            let normalised: Unicode.Scalar = scalar == " " ? "\u{2581}" : scalar
            let marker = normalised == "\u{2581}"
            // A `▁` after anything else starts a word.
            if marker, !afterMarker {
                flush()
                word = String.UnicodeScalarView()
            }
            word.append(normalised)
            afterMarker = marker
        }
        flush()
        return ids
    }

    private func symbol(_ scalar: Unicode.Scalar, into symbols: inout [Int32]) {
        if let id = vocabulary[String(Character(scalar))] {
            symbols.append(id)
        } else {
            for byte in String(Character(scalar)).utf8 { symbols.append(byteTokens[Int(byte)]) }
        }
    }

    /// The token ids of `text`, merged over the whole text at once (the reference algorithm).
    func encodeWhole(_ text: String) -> [Int32] {
        guard !text.isEmpty else { return [] }
        // Normalise: "▁" before the text and in place of every space.
        var symbols: [Int32] = []
        symbols.reserveCapacity(text.unicodeScalars.count + 1)
        symbol("\u{2581}", into: &symbols)
        for scalar in text.unicodeScalars { symbol(scalar == " " ? "\u{2581}" : scalar, into: &symbols) }
        return merge(symbols)
    }

    private func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Applies the ranked merges over a doubly linked list of symbols.
    private func merge(_ initial: [Int32]) -> [Int32] {
        var ids = initial
        let count = ids.count
        guard count > 1 else { return ids }
        var next = Array(1...count)  // count = none
        var previous = Array(-1..<(count - 1))
        var alive = [Bool](repeating: true, count: count)
        // (rank, position, left id, right id): stale entries are skipped when popped.
        var heap = MinHeap()
        for index in 0..<(count - 1) {
            if let merge = merges[pairKey(ids[index], ids[index + 1])] {
                heap.push(.init(rank: merge.rank, position: Int32(index), left: ids[index], right: ids[index + 1]))
            }
        }
        while let top = heap.pop() {
            let position = Int(top.position)
            guard alive[position], ids[position] == top.left else { continue }
            let right = next[position]
            guard right < count, ids[right] == top.right, let merge = merges[pairKey(top.left, top.right)], merge.rank == top.rank
            else { continue }
            ids[position] = merge.id
            alive[right] = false
            next[position] = next[right]
            if next[right] < count { previous[next[right]] = position }
            if previous[position] >= 0 {
                let before = previous[position]
                if let merged = merges[pairKey(ids[before], ids[position])] {
                    heap.push(.init(rank: merged.rank, position: Int32(before), left: ids[before], right: ids[position]))
                }
            }
            if next[position] < count {
                let after = next[position]
                if let merged = merges[pairKey(ids[position], ids[after])] {
                    heap.push(.init(rank: merged.rank, position: Int32(position), left: ids[position], right: ids[after]))
                }
            }
        }
        var result: [Int32] = []
        var index = 0
        while index < count {
            result.append(ids[index])
            index = next[index]
        }
        return result
    }

    struct MinHeap {
        struct Entry {
            let rank: Int32
            let position: Int32
            let left: Int32
            let right: Int32
            func precedes(_ other: Entry) -> Bool { rank != other.rank ? rank < other.rank : position < other.position }
        }
        private var items: [Entry] = []

        mutating func push(_ entry: Entry) {
            items.append(entry)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard items[child].precedes(items[parent]) else { break }
                items.swapAt(child, parent)
                child = parent
            }
        }

        mutating func pop() -> Entry? {
            guard let first = items.first else { return nil }
            let last = items.removeLast()
            if !items.isEmpty {
                items[0] = last
                var parent = 0
                while true {
                    let left = 2 * parent + 1, right = left + 1
                    var smallest = parent
                    if left < items.count, items[left].precedes(items[smallest]) { smallest = left }
                    if right < items.count, items[right].precedes(items[smallest]) { smallest = right }
                    if smallest == parent { break }
                    items.swapAt(parent, smallest)
                    parent = smallest
                }
            }
            return first
        }
    }
}

/// Reads one fp16 matrix from a `.safetensors` file: an 8-byte little-endian header length, a
/// JSON header naming each tensor's dtype, shape and byte range, then the data.
enum SafeTensors {
    static func float16Matrix(_ data: Data, name: String) throws -> (values: [Float], rows: Int, columns: Int) {
        struct Tensor: Decodable {
            let dtype: String
            let shape: [Int]
            let data_offsets: [Int]
        }
        /// `__metadata__` is a map of strings, not a tensor: it decodes as nil.
        struct Entry: Decodable {
            let tensor: Tensor?
            init(from decoder: any Decoder) throws { tensor = try? Tensor(from: decoder) }
        }
        guard data.count >= 8 else { throw EmbedderError.unavailable("the weights file is too short") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard headerLength > 0, 8 + headerLength <= data.count,
            // JSON, padded with spaces.
            let header = try? JSONDecoder().decode([String: Entry].self, from: data.subdata(in: 8..<(8 + headerLength))),
            let tensor = header[name]?.tensor
        else { throw EmbedderError.unavailable("the weights file has no tensor \(name)") }
        guard tensor.dtype == "F16", tensor.shape.count == 2, tensor.data_offsets.count == 2 else {
            throw EmbedderError.unavailable("\(name) is not a 2-dimensional F16 tensor")
        }
        let (rows, columns) = (tensor.shape[0], tensor.shape[1])
        let start = 8 + headerLength + tensor.data_offsets[0], end = 8 + headerLength + tensor.data_offsets[1]
        guard end - start == rows * columns * 2, end <= data.count else { throw EmbedderError.unavailable("\(name)'s byte range does not match its shape") }
        var values = [Float](repeating: 0, count: rows * columns)
        data.withUnsafeBytes { raw in
            let bytes = raw.baseAddress!.advanced(by: start)
            values.withUnsafeMutableBufferPointer { out in
                for index in 0..<(rows * columns) {
                    let bits = UInt16(bytes.load(fromByteOffset: 2 * index, as: UInt8.self))
                        | UInt16(bytes.load(fromByteOffset: 2 * index + 1, as: UInt8.self)) << 8
                    out[index] = Float(Float16(bitPattern: bits))
                }
            }
        }
        return (values, rows, columns)
    }
}
