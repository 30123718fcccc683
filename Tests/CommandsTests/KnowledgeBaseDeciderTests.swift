import Commands
import Events
import Foundation
import Testing

/// The knowledge base decider: creation checks, document versions, a repeated upload that
/// appends nothing, idempotent deletes and ids that are never reused.
@Suite struct KnowledgeBaseDeciderTests {
    typealias Spec = DeciderSpec<KnowledgeBaseDecider>
    static let base = UUID(uuidString: "5B0C7E3A-1D6F-4E2B-9A8C-0F1E2D3C4B5A")!
    static let document = UUID(uuidString: "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D")!
    static let now = Date(timeIntervalSince1970: 1_767_607_200)
    static let hashA = String(repeating: "a", count: 64)
    static let hashB = String(repeating: "b", count: 64)

    static func content(_ hash: String = hashA, type: String = "text/markdown") -> KnowledgeDocumentContent {
        KnowledgeDocumentContent(name: "guide.md", mediaType: type, contentHash: hash, byteCount: 120)
    }

    static let created = KnowledgeEvent.created(KnowledgeBaseCreated(
        knowledgeBaseID: base, ownerID: "alice", name: "Docs", description: "", chunking: .default,
        embeddingModel: "wordllama-l2-supercat-256 (offline)", createdAt: now))

    static func stored(_ version: Int, _ hash: String = hashA, replacing replaced: String? = nil) -> KnowledgeEvent {
        .stored(KnowledgeDocumentStored(
            knowledgeBaseID: base, documentID: document, version: version, content: content(hash), replacedContentHash: replaced, storedAt: now))
    }

    static let deleted = KnowledgeEvent.deleted(KnowledgeDocumentDeleted(knowledgeBaseID: base, documentID: document, version: 2, deletedAt: now))

    @Test func createTrimsItsNameAndRefusesBadSettingsOrASecondCreate() throws {
        try Spec.given().when(.create(
            knowledgeBaseID: Self.base, ownerID: "alice", name: "  Docs \n", description: "", chunking: .default,
            embeddingModel: "wordllama-l2-supercat-256 (offline)", now: Self.now)
        ).then([Self.created])
        try Spec.given().when(.create(
            knowledgeBaseID: Self.base, ownerID: "alice", name: " ", description: "", chunking: .default, embeddingModel: "m", now: Self.now)
        ).thenThrows(.knowledgeBaseInvalid)
        try Spec.given().when(.create(
            knowledgeBaseID: Self.base, ownerID: "alice", name: "Docs", description: "",
            chunking: ChunkingSettings(maxTokens: 512, overlapTokens: 400), embeddingModel: "m", now: Self.now)
        ).thenThrows(.knowledgeBaseInvalid)
        try Spec.given([Self.created]).when(.create(
            knowledgeBaseID: Self.base, ownerID: "bob", name: "Again", description: "", chunking: .default, embeddingModel: "m", now: Self.now)
        ).thenThrows(.knowledgeBaseExists)
    }

    @Test func aDocumentGetsVersionsAndTheSameBytesAgainAppendNothing() throws {
        try Spec.given([Self.created]).when(.store(documentID: Self.document, content: Self.content(), now: Self.now)).then([Self.stored(1)])
        try Spec.given([Self.created, Self.stored(1)]).when(.store(documentID: Self.document, content: Self.content(), now: Self.now)).then([])
        let state = try Spec.given([Self.created, Self.stored(1)])
            .when(.store(documentID: Self.document, content: Self.content(Self.hashB), now: Self.now)).then([Self.stored(2, Self.hashB, replacing: Self.hashA)])
        #expect(state.documents[Self.document]?.version == 2 && state.liveDocuments == 1)
    }

    @Test func deletingIsIdempotentAndADeletedIdIsNeverReused() throws {
        let history = [Self.created, Self.stored(1), Self.stored(2, Self.hashB, replacing: Self.hashA)]
        let state = try Spec.given(history).when(.deleteDocument(documentID: Self.document, now: Self.now)).then([Self.deleted])
        #expect(state.liveDocuments == 0 && state.documents[Self.document]?.deleted == true)
        try Spec.given(history + [Self.deleted]).when(.deleteDocument(documentID: Self.document, now: Self.now)).then([])
        try Spec.given(history + [Self.deleted]).when(.store(documentID: Self.document, content: Self.content(), now: Self.now))
            .thenThrows(.knowledgeDocumentDeleted)
        try Spec.given([Self.created]).when(.deleteDocument(documentID: UUID(), now: Self.now)).thenThrows(.knowledgeDocumentNotFound)
    }

    @Test func documentsAreChecked() throws {
        let spec = Spec.given([Self.created])
        try spec.when(.store(documentID: Self.document, content: Self.content(type: "image/png"), now: Self.now)).thenThrows(.knowledgeMediaTypeUnsupported)
        try spec.when(.store(documentID: Self.document, content: Self.content("XYZ"), now: Self.now)).thenThrows(.knowledgeDocumentInvalid)
        var empty = Self.content()
        empty.byteCount = 0
        try spec.when(.store(documentID: Self.document, content: empty, now: Self.now)).thenThrows(.knowledgeDocumentInvalid)
        try Spec.given().when(.store(documentID: Self.document, content: Self.content(), now: Self.now)).thenThrows(.knowledgeBaseNotFound)
    }

    @Test func eventsRoundTripThroughTheirRegistry() throws {
        for event in [Self.created, Self.stored(2, Self.hashB, replacing: Self.hashA), Self.deleted] {
            let payload = event.payload
            let data = try EventCoding.encode(AnyPayload(payload))
            let decoded = try EventRegistry.knowledge.decode(type: type(of: payload).eventType, version: 1, data: data)
            #expect(KnowledgeEvent(payload: decoded) == event)
        }
    }

    struct AnyPayload: Encodable {
        let value: any Encodable
        init(_ value: any Encodable) { self.value = value }
        func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
    }
}
