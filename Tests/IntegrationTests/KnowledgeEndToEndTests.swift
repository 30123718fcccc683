import Adapters
import Commands
import Events
import Foundation
import PostgresNIO
import Testing

/// Knowledge as a user meets it, on a `chronicle serve` with the relay and the indexing worker:
/// a Markdown file (JSON) and a PDF (multipart) uploaded, indexed offline, searched three ways
/// with results whose offsets point at exactly their text, then a deletion that leaves no chunk
/// and no bytes behind.
@Suite(.serialized) struct KnowledgeEndToEndTests {
    static let handbook = """
        # Handbook

        ## Deployments

        Deployments run every Tuesday. The release captain tags the build and watches the canary for thirty minutes before promoting it.

        ## Holidays

        Each employee gets twenty-five days of paid vacation a year. Unused vacation days roll over until March.

        ## Security

        Laptops must use full disk encryption. Report a lost badge to the front desk within one hour.
        """

    /// A one-page PDF with `lines` of Helvetica text, written by hand (objects, xref, trailer).
    static func pdf(_ lines: [String]) -> Data {
        var content = "BT /F1 12 Tf 72 720 Td 14 TL\n"
        for line in lines { content += "(\(line)) Tj T*\n" }
        content += "ET"
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            "<< /Length \(content.utf8.count) >>\nstream\n\(content)\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        var out = "%PDF-1.4\n"
        var offsets: [Int] = []
        for (index, object) in objects.enumerated() {
            offsets.append(out.utf8.count)
            out += "\(index + 1) 0 obj\n\(object)\nendobj\n"
        }
        let xref = out.utf8.count
        out += "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        for offset in offsets { out += String(format: "%010d 00000 n \n", offset) }
        out += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        return Data(out.utf8)
    }

    static func multipart(_ file: Data, filename: String, type: String, fields: [String: String] = [:]) -> (Data, String) {
        let boundary = "chronicle-\(UUID().uuidString)"
        var body = Data()
        for (name, value) in fields {
            body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: \(type)\r\n\r\n".utf8)
        body += file
        body += Data("\r\n--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    static func count(_ database: ChronicleDatabase, _ sql: PostgresQuery) async throws -> Int {
        var total = 0
        for try await value in try await database.client.query(sql, logger: TestServers.logger).decode(Int64.self) { total = Int(value) }
        return total
    }

    static func hits(_ reply: HTTPTestClient.Reply) -> [[String: Any]] { reply.json["results"] as? [[String: Any]] ?? [] }

    @Test func uploadIndexSearchAndDeleteOfflineWithCitationsThatPointAtTheirText() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(
                database, roles: "api,projectors,relay,workers", env: ["CHRONICLE_KNOWLEDGE_MAX_DOCUMENT_MIB": "1", "CHRONICLE_SANDBOX_WARM": "0"]
            ) { client, _ in
                let created = try await client.send("POST", "/api/v1/knowledge/bases", json: ["name": "Handbook", "chunking": ["max_tokens": 64, "overlap_tokens": 8]])
                #expect(created.status == 201, "\(created.text)")
                let base = try #require(created.json["id"] as? String)
                #expect((created.json["embedding_model"] as? String)?.contains("offline") == true)

                let markdown = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/documents", json: ["name": "handbook.md", "media_type": "text/markdown", "content": Self.handbook])
                #expect(markdown.status == 202, "\(markdown.text)")
                let markdownID = try #require(markdown.json["id"] as? String)
                let (body, type) = Self.multipart(
                    Self.pdf(["Expense policy", "Meals while travelling are reimbursed up to forty euros a day.", "Submit receipts within thirty days."]),
                    filename: "expenses.pdf", type: "application/octet-stream")
                let pdf = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/documents", body: body, contentType: type)
                #expect(pdf.status == 202, "\(pdf.text)")
                #expect(pdf.json["media_type"] as? String == "application/pdf")

                // Both indexed, offline.
                let listed = try await client.poll("/api/v1/knowledge/bases/\(base)/documents", timeout: .seconds(120)) { json in
                    let items = json["items"] as? [[String: Any]] ?? []
                    return items.count == 2 && items.allSatisfy { (($0["indexing"] as? [String: Any])?["status"] as? String) == "completed" }
                }
                let items = listed.json["items"] as? [[String: Any]] ?? []
                #expect(items.map { ($0["indexing"] as? [String: Any])?["status"] as? String } == ["completed", "completed"], "\(listed.text)")
                // The offline tokenizer's count of what each run embedded, at no cost.
                for item in items {
                    let indexing = item["indexing"] as? [String: Any] ?? [:]
                    #expect((indexing["embedding_tokens"] as? Int ?? 0) > 0 && indexing["embedding_cost"] as? Double == 0, "\(indexing)")
                }

                // Hybrid: the vacation question lands on the Holidays section, and the offsets
                // cut exactly the chunk's text out of the document.
                let hybrid = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "how many vacation days does an employee get", "top_k": 3])
                #expect(hybrid.status == 200, "\(hybrid.text)")
                #expect((hybrid.json["model"] as? String)?.contains("offline") == true)
                let top = try #require(Self.hits(hybrid).first, "\(hybrid.text)")
                #expect((top["heading_path"] as? [String])?.last == "Holidays", "\(hybrid.text)")
                #expect((top["text"] as? String)?.contains("twenty-five days") == true)
                let scalars = Array(Self.handbook.unicodeScalars)
                let start = try #require(top["start"] as? Int), end = try #require(top["end"] as? Int)
                #expect(String(String.UnicodeScalarView(scalars[start..<end])) == top["text"] as? String)

                // Keyword finds the PDF's passage; vector finds the security rule by meaning.
                let keyword = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "reimbursed meals", "mode": "keyword"])
                #expect(Self.hits(keyword).first?["document_name"] as? String == "expenses.pdf", "\(keyword.text)")
                #expect((Self.hits(keyword).first?["text"] as? String)?.contains("forty euros") == true)
                let vector = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "encrypt laptop disks", "mode": "vector", "top_k": 1])
                #expect((Self.hits(vector).first?["heading_path"] as? [String])?.last == "Security", "\(vector.text)")
                // The served vector ranking scores a chunk by the better of its whole vector and
                // its best passage, as the offline embedder computes them.
                if let hit = Self.hits(vector).first, let text = hit["text"] as? String, let path = hit["heading_path"] as? [String],
                    let score = hit["score"] as? Double
                {
                    let embedder = try WordLlamaEmbedderTests.embedder.get()
                    let query = embedder.vector(for: "encrypt laptop disks")
                    func dot(_ a: [Float], _ b: [Float]) -> Double { Double(zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }) }
                    let whole = dot(query, embedder.vector(for: Chunk(ordinal: 0, headingPath: path, start: 0, end: 0, text: text, tokens: 0).embeddingInput))
                    let best = embedder.passageVectors(text, context: path.joined(separator: " > "), window: 96, stride: 48).map { dot(query, $0) }.max() ?? 0
                    #expect(abs(score - max(whole, best)) < 1e-4, "score \(score), whole chunk \(whole), best passage \(best)")
                } else {
                    Issue.record("no scored vector hit: \(vector.text)")
                }
                // Any input parses.
                let odd = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "\"unclosed OR -( & |", "mode": "keyword"])
                #expect(odd.status == 200, "\(odd.text)")

                // The same bytes again are no new version; refusals are problems.
                let again = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/documents",
                    json: ["name": "handbook.md", "media_type": "text/markdown", "content": Self.handbook, "document_id": markdownID])
                #expect(again.status == 202 && again.json["version"] as? Int == 1, "\(again.text)")
                let large = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/documents",
                    json: ["name": "big.txt", "media_type": "text/plain", "content": String(repeating: "a", count: 1_200_000)])
                #expect(large.status == 413 && large.json["code"] as? String == "knowledge.document_too_large", "\(large.status) \(large.text)")
                let png = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/documents", json: ["name": "x.png", "media_type": "image/png", "content": "x"])
                #expect(png.status == 422 && png.json["code"] as? String == "knowledge.media_type_unsupported", "\(png.status) \(png.text)")
                // An Idempotency-Key already used for another command is refused as such (the
                // upload's append runs inside the bytes' lock transaction, which must not turn
                // the refusal into a 500).
                let otherBase = try await client.send(
                    "POST", "/api/v1/knowledge/bases", json: ["name": "Other"], headers: ["Idempotency-Key": "knowledge-e2e-key"])
                let clash = try await client.send(
                    "POST", "/api/v1/knowledge/bases/\(base)/documents", json: ["name": "s.md", "media_type": "text/markdown", "content": "other bytes"],
                    headers: ["Idempotency-Key": "knowledge-e2e-key"])
                #expect(otherBase.status == 201 && clash.status == 422, "\(otherBase.status) \(clash.status) \(clash.text)")
                #expect((markdown.json["created_at"] as? String)?.hasSuffix("Z") == true, "dates are RFC 3339 text: \(markdown.text)")
                let other = try await client.signIn(database)
                #expect(try await other.send("GET", "/api/v1/knowledge/bases/\(base)").status == 404)
                #expect(try await other.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "vacation"]).status == 404)

                // Ask: an offline, extractive answer that cites the passage it quotes.
                let asked = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/ask", json: ["question": "How many vacation days does each employee get?"])
                #expect(asked.status == 202, "\(asked.text)")
                let answerPath = try #require(asked.headers["location"])
                let answered = try await client.poll(answerPath, timeout: .seconds(60)) { $0["status"] as? String != "pending" }
                #expect(answered.json["status"] as? String == "completed", "\(answered.text)")
                #expect(answered.json["model"] as? String == "extractive (offline)")
                let text = answered.json["answer"] as? String ?? ""
                #expect(text.hasPrefix("Offline answer") && text.contains("twenty-five days") && text.contains("[1]"), "\(text)")
                let citations = answered.json["citations"] as? [[String: Any]] ?? []
                let cited = try #require(citations.first, "\(answered.text)")
                let citedStart = try #require(cited["start"] as? Int), citedEnd = try #require(cited["end"] as? Int)
                #expect(cited["document_id"] as? String == markdownID && cited["stale"] as? Bool == false)
                #expect(String(String.UnicodeScalarView(scalars[citedStart..<citedEnd])).contains("twenty-five days of paid vacation"))
                #expect(answered.json["stale"] as? Bool == false)
                let foreign = try await other.send("GET", answerPath)
                #expect(foreign.status == 404)

                // An agent with knowledge.search (the offline model searches the base its input
                // names) finds the passage; another owner's agent is told there is no such base.
                let agent = try await AgentsEndToEndTests.createAgent(client, plugins: ["knowledge.search"])
                let run = try await AgentsEndToEndTests.execute(client, agent: agent, input: "\(base) paid vacation days")
                let ran = try await client.poll("/api/v1/agents/\(agent)/executions/\(run)", until: AgentsEndToEndTests.terminal)
                #expect(ran.json["status"] as? String == "completed" && (ran.json["output"] as? String)?.contains("twenty-five days") == true, "\(ran.text)")
                let stranger = try await AgentsEndToEndTests.createAgent(other, plugins: ["knowledge.search"])
                let refused = try await AgentsEndToEndTests.execute(other, agent: stranger, input: "\(base) paid vacation days")
                let strangerRan = try await other.poll("/api/v1/agents/\(stranger)/executions/\(refused)", until: AgentsEndToEndTests.terminal)
                #expect((strangerRan.json["output"] as? String)?.contains("no such knowledge base") == true, "\(strangerRan.text)")

                // Deleting leaves no chunk and no bytes.
                let document = try #require(UUID(uuidString: markdownID))
                #expect(try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(document)") > 0)
                let deleted = try await client.send("DELETE", "/api/v1/knowledge/bases/\(base)/documents/\(markdownID)")
                #expect(deleted.status == 204, "\(deleted.text)")
                let hash = try #require(markdown.json["content_hash"] as? String)
                let deadline = ContinuousClock.now.advanced(by: .seconds(60))
                var left = (chunks: 1, blobs: 1)
                while left != (0, 0), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                    left = (
                        try await Self.count(database, "SELECT count(*) FROM knowledge_chunks WHERE document_id = \(document)"),
                        try await Self.count(database, "SELECT count(*) FROM knowledge_blobs WHERE sha256 = \(hash)")
                    )
                }
                #expect(left == (0, 0), "after the deletion: \(left.chunks) chunks and \(left.blobs) blobs")
                let gone = try await client.send("POST", "/api/v1/knowledge/bases/\(base)/search", json: ["query": "vacation", "mode": "keyword"])
                #expect(Self.hits(gone).isEmpty, "\(gone.text)")
                #expect(try await client.send("GET", "/api/v1/knowledge/bases/\(base)/documents/\(markdownID)").status == 404)
                // The answer that cited it is stale now.
                let stale = try await client.send("GET", answerPath)
                #expect(stale.json["stale"] as? Bool == true && (stale.json["citations"] as? [[String: Any]])?.first?["stale"] as? Bool == true, "\(stale.text)")
            }
        }
    }
}
