import Commands
import Events
import Foundation
import Hummingbird

/// The Knowledge routes' JSON shapes (snake_case), and reading an upload.
enum KnowledgeDTO {
    static func id(_ id: UUID) -> String { id.uuidString.lowercased() }

    struct Base: Encodable {
        var id: String
        var name: String
        var description: String
        var ownerID: String
        var chunking: Chunking
        var embeddingModel: String
        /// Moves with every document change; an answer records the one it was given.
        var indexVersion: Int64
        var documents: Int

        struct Chunking: Encodable {
            var maxTokens: Int
            var overlapTokens: Int
            enum CodingKeys: String, CodingKey {
                case maxTokens = "max_tokens"
                case overlapTokens = "overlap_tokens"
            }
        }

        enum CodingKeys: String, CodingKey {
            case id, name, description, chunking, documents
            case ownerID = "owner_id"
            case embeddingModel = "embedding_model"
            case indexVersion = "index_version"
        }
    }

    struct Document: Encodable {
        var id: String
        var name: String
        var mediaType: String
        var version: Int
        var contentHash: String
        var byteCount: Int
        var createdAt: String
        var storedAt: String
        var indexing: Indexing

        /// The current version's run: `queued` (no run yet), `running`, `completed`, `failed`,
        /// `cancelled`, `timed_out`.
        struct Indexing: Encodable {
            var status: String
            var chunks: Int?
            var reason: String?
            /// Chunks embedded so far, of the total, while it runs.
            var done: Int?
            var total: Int?
            /// Once completed: the input tokens the run embedded (texts from the embedding cache
            /// cost none) and their cost in US dollars.
            var embeddingTokens: Int?
            var embeddingCost: Double?

            enum CodingKeys: String, CodingKey {
                case status, chunks, reason, done, total
                case embeddingTokens = "embedding_tokens"
                case embeddingCost = "embedding_cost"
            }
        }

        init(id: UUID, _ document: KnowledgeBaseDecider.Document, run: KnowledgeIndexingDecider.State) {
            self.id = KnowledgeDTO.id(id)
            name = document.content.name
            mediaType = document.content.mediaType
            version = document.version
            contentHash = document.content.contentHash
            byteCount = document.content.byteCount
            createdAt = Timestamp.format(document.createdAt)
            storedAt = Timestamp.format(document.storedAt)
            indexing = Indexing(
                status: run.status == .none ? "queued" : run.status.rawValue, chunks: run.chunks, reason: run.reason, done: run.done, total: run.total,
                embeddingTokens: run.embeddingTokens, embeddingCost: run.embeddingCost)
        }

        enum CodingKeys: String, CodingKey {
            case id, name, version, indexing
            case mediaType = "media_type"
            case contentHash = "content_hash"
            case byteCount = "byte_count"
            case createdAt = "created_at"
            case storedAt = "stored_at"
        }
    }

    struct Documents: Encodable {
        var items: [Document]
        var page: Int
        var pageSize: Int
        var totalCount: Int
        var indexVersion: Int64

        enum CodingKeys: String, CodingKey {
            case items, page
            case pageSize = "page_size"
            case totalCount = "total_count"
            case indexVersion = "index_version"
        }
    }

    struct Hit: Encodable {
        var chunkID: String
        var documentID: String
        var documentName: String
        var documentVersion: Int
        var ordinal: Int
        var headingPath: [String]
        var start: Int
        var end: Int
        var text: String
        var contentHash: String
        var score: Double

        init(chunk: FoundChunk, score: Double, documentName: String) {
            chunkID = KnowledgeDTO.id(chunk.chunkID)
            documentID = KnowledgeDTO.id(chunk.documentID)
            self.documentName = documentName
            documentVersion = chunk.documentVersion
            ordinal = chunk.ordinal
            headingPath = chunk.headingPath
            start = chunk.start
            end = chunk.end
            text = chunk.text
            contentHash = chunk.contentHash
            self.score = score
        }

        enum CodingKeys: String, CodingKey {
            case ordinal, start, end, text, score
            case chunkID = "chunk_id"
            case documentID = "document_id"
            case documentName = "document_name"
            case documentVersion = "document_version"
            case headingPath = "heading_path"
            case contentHash = "content_hash"
        }
    }

    struct SearchResult: Encodable {
        var mode: String
        /// The embedder the vectors came from; an offline one says so in its name.
        var model: String
        var indexVersion: Int64
        var results: [Hit]

        enum CodingKeys: String, CodingKey {
            case mode, model, results
            case indexVersion = "index_version"
        }
    }

    /// An answer, with each citation checked against the index as it is now.
    struct Answer: Encodable {
        var id: String
        var question: String
        var status: String
        var answer: String?
        var model: String?
        var embeddingModel: String?
        /// The base's index version the answer was given at, and now.
        var indexVersion: Int64?
        var currentIndexVersion: Int64
        var citations: [Citation]
        var droppedMarkers: [String]
        /// True once any cited chunk changed or left the index.
        var stale: Bool
        var reason: String?
        var requestedAt: String
        var completedAt: String?

        struct Citation: Encodable {
            var marker: Int
            var chunkID: String
            var documentID: String
            var documentVersion: Int
            var start: Int
            var end: Int
            var contentHash: String
            var stale: Bool
            /// The cited text, while the chunk is in the index unchanged.
            var text: String?

            enum CodingKeys: String, CodingKey {
                case marker, start, end, stale, text
                case chunkID = "chunk_id"
                case documentID = "document_id"
                case documentVersion = "document_version"
                case contentHash = "content_hash"
            }
        }

        init(id: UUID, _ state: KnowledgeAnswerDecider.State, current: [UUID: FoundChunk], indexVersion: Int64) {
            self.id = KnowledgeDTO.id(id)
            question = state.request?.question ?? ""
            status = state.status.rawValue
            answer = state.completed?.answer
            model = state.completed?.model
            embeddingModel = state.completed?.embeddingModel
            self.indexVersion = state.completed?.indexVersion
            currentIndexVersion = indexVersion
            citations = (state.completed?.citations ?? []).map { cited in
                let now = current[cited.chunkID]
                let fresh = now?.contentHash == cited.contentHash
                return Citation(
                    marker: cited.marker, chunkID: KnowledgeDTO.id(cited.chunkID), documentID: KnowledgeDTO.id(cited.documentID),
                    documentVersion: cited.documentVersion, start: cited.start, end: cited.end, contentHash: cited.contentHash, stale: !fresh,
                    text: fresh ? now?.text : nil)
            }
            droppedMarkers = state.completed?.droppedMarkers ?? []
            stale = citations.contains(where: \.stale)
            reason = state.failure
            requestedAt = Timestamp.format(state.request?.requestedAt ?? Date(timeIntervalSince1970: 0))
            completedAt = state.completed.map { Timestamp.format($0.completedAt) }
        }

        enum CodingKeys: String, CodingKey {
            case id, question, status, answer, model, citations, stale, reason
            case embeddingModel = "embedding_model"
            case indexVersion = "index_version"
            case currentIndexVersion = "current_index_version"
            case droppedMarkers = "dropped_markers"
            case requestedAt = "requested_at"
            case completedAt = "completed_at"
        }
    }

    /// The media type a document is stored as: the one given (parameters dropped), else by the
    /// name's extension; the decider refuses anything else.
    static func mediaType(_ given: String?, name: String) -> String {
        let declared = given?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if !declared.isEmpty, declared != "application/octet-stream" {
            return declared == "text/x-markdown" ? "text/markdown" : declared
        }
        switch (name as NSString).pathExtension.lowercased() {
        case "md", "markdown": return "text/markdown"
        case "txt", "text": return "text/plain"
        case "html", "htm": return "text/html"
        case "pdf": return "application/pdf"
        default: return declared.isEmpty ? "application/octet-stream" : declared
        }
    }
}

extension KnowledgeController {
    struct Upload {
        var name: String
        var mediaType: String?
        var bytes: Data
        var documentID: String?
    }

    static func malformed(_ detail: String) -> Problem { Problem(.badRequest, code: "knowledge.document_invalid", detail: detail) }

    /// The document in a request: JSON (base64 or text content; the body may be a third larger
    /// than the limit, for base64) or `multipart/form-data`.
    static func parseUpload(_ request: Request, context: ChronicleRequestContext, limit: Int) async throws -> Upload {
        let contentType = request.headers[.contentType] ?? ""
        let tooLarge = Problem(.contentTooLarge, code: "knowledge.document_too_large", detail: "a document is at most \(limit) bytes")
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            let body: ByteBuffer
            do {
                body = try await BoundedJSONDecoder.collect(request, limit: limit + 64 * 1024)
            } catch let problem as Problem where problem.status == .contentTooLarge {
                throw tooLarge
            }
            return try multipart(Data(buffer: body), contentType: contentType)
        }
        guard contentType.lowercased().hasPrefix("application/json") || contentType.isEmpty else {
            throw Problem(.unsupportedMediaType, code: "request.unsupported_media_type", detail: "send the document as application/json or multipart/form-data")
        }
        let body: ByteBuffer
        do {
            body = try await BoundedJSONDecoder.collect(request, limit: limit / 3 * 4 + 64 * 1024)
        } catch let problem as Problem where problem.status == .contentTooLarge {
            throw tooLarge
        }
        try BoundedJSONDecoder.checkDepth(body, max: BoundedJSONDecoder.maxDepth)
        let json: JSONUpload
        do {
            json = try JSONDecoder().decode(JSONUpload.self, from: Data(buffer: body))
        } catch let error as DecodingError {
            throw Problem(.badRequest, code: "request.malformed", detail: BoundedJSONDecoder.describe(error))
        }
        let bytes: Data
        switch (json.content, json.contentBase64) {
        case (let text?, nil): bytes = Data(text.utf8)
        case (nil, let encoded?):
            guard let decoded = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) else { throw malformed("content_base64 is not base64") }
            bytes = decoded
        default: throw malformed("give exactly one of content and content_base64")
        }
        return Upload(name: json.name, mediaType: json.mediaType, bytes: bytes, documentID: json.documentID)
    }

    /// The `file` part (with its filename and type) and the `document_id` and `media_type` fields
    /// of a multipart body (RFC 7578).
    static func multipart(_ body: Data, contentType: String) throws -> Upload {
        guard let boundaryParameter = contentType.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) })
            .first(where: { $0.lowercased().hasPrefix("boundary=") })
        else { throw malformed("a multipart body needs its boundary") }
        let boundary = boundaryParameter.dropFirst("boundary=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        guard !boundary.isEmpty, boundary.count <= 200 else { throw malformed("a multipart boundary is 1 to 200 characters") }
        let delimiter = Data("--\(boundary)".utf8)
        var parts: [(headers: [String: String], body: Data)] = []
        var cursor = body.startIndex
        guard let first = body.range(of: delimiter, in: cursor..<body.endIndex) else { throw malformed("no multipart part found") }
        cursor = first.upperBound
        while cursor < body.endIndex {
            // After a delimiter: "--" ends the body, else a line break and the part's headers.
            if body[cursor...].starts(with: Data("--".utf8)) { break }
            guard let headersEnd = body.range(of: Data("\r\n\r\n".utf8), in: cursor..<body.endIndex) else { throw malformed("a multipart part has no headers") }
            let headerText = String(decoding: body[cursor..<headersEnd.lowerBound], as: UTF8.self)
            var headers: [String: String] = [:]
            for line in headerText.split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard let next = body.range(of: Data("\r\n--\(boundary)".utf8), in: headersEnd.upperBound..<body.endIndex) else {
                throw malformed("a multipart part is not closed by its boundary")
            }
            parts.append((headers, Data(body[headersEnd.upperBound..<next.lowerBound])))
            cursor = next.upperBound
        }
        func parameter(_ name: String, of disposition: String) -> String? {
            for piece in disposition.split(separator: ";") {
                let pair = piece.trimmingCharacters(in: .whitespaces)
                if pair.lowercased().hasPrefix("\(name)=") {
                    return String(pair.dropFirst(name.count + 1)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            return nil
        }
        var upload: Upload?
        var fields: [String: String] = [:]
        for part in parts {
            let disposition = part.headers["content-disposition"] ?? ""
            guard let name = parameter("name", of: disposition) else { continue }
            if name == "file" {
                upload = Upload(name: parameter("filename", of: disposition) ?? "document", mediaType: part.headers["content-type"], bytes: part.body)
            } else {
                fields[name] = String(decoding: part.body, as: UTF8.self)
            }
        }
        guard var found = upload else { throw malformed("a multipart upload needs a part named file") }
        if let type = fields["media_type"] { found.mediaType = type }
        found.documentID = fields["document_id"]
        return found
    }
}
