extension DomainError.Code {
    // The Knowledge module's error codes.
    public static let knowledgeBaseExists: Self = "knowledge.exists"
    public static let knowledgeBaseFull: Self = "knowledge.full"
    public static let knowledgeBaseInvalid: Self = "knowledge.invalid"
    public static let knowledgeBaseNotFound: Self = "knowledge.not_found"
    public static let knowledgeDocumentDeleted: Self = "knowledge.document_deleted"
    public static let knowledgeDocumentInvalid: Self = "knowledge.document_invalid"
    public static let knowledgeDocumentNotFound: Self = "knowledge.document_not_found"
    public static let knowledgeMediaTypeUnsupported: Self = "knowledge.media_type_unsupported"
    public static let knowledgeIndexingEnded: Self = "knowledge.indexing_ended"
    public static let knowledgeMessageMalformed: Self = "knowledge.message_malformed"
    public static let knowledgeQueryInvalid: Self = "knowledge.query_invalid"
    public static let knowledgeAnswerExists: Self = "knowledge.answer_exists"
    public static let knowledgeAnswerEnded: Self = "knowledge.answer_ended"
}
