import Commands
import Events
import Foundation
import HTTPTypes
import Hummingbird

/// Building answers and reading the request parts every module's routes share.
enum Reply {
    static let positionHeader = HTTPField.Name("X-Chronicle-Position")!

    /// JSON with the status, `Location`, `ETag` (the stream version) and the written position.
    static func json(
        _ value: some Encodable, status: HTTPResponse.Status, location: String? = nil, version: Int64? = nil, position: Checkpoint? = nil,
        context: ChronicleRequestContext
    ) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let location { headers[.location] = location }
        if let version { headers[.eTag] = "\"\(version)\"" }
        if let position { headers[positionHeader] = token(position) }
        let data = try context.responseEncoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func token(_ checkpoint: Checkpoint) -> String { "\(checkpoint.transactionID).\(checkpoint.position)" }

    static func checkpoint(_ token: String) -> Checkpoint? {
        let parts = token.split(separator: ".")
        guard parts.count == 2, let tx = UInt64(parts[0]), let position = Int64(parts[1]) else { return nil }
        return Checkpoint(transactionID: tx, position: position)
    }

    /// Read-your-writes: with `X-Chronicle-After` (a command's `X-Chronicle-Position`), waits (up
    /// to `timeout`) until the read model has passed it; a malformed position is a 400.
    /// False when the read model had not passed the position within `timeout` (the caller may
    /// then answer from the log instead); true when it had, or nothing was asked.
    @discardableResult
    static func waitIfAsked(_ request: Request, timeout: Duration, _ wait: (Checkpoint, Duration) async throws -> Bool) async throws -> Bool {
        guard let token = request.headers[.init("X-Chronicle-After")!] else { return true }
        guard let checkpoint = checkpoint(token) else {
            throw Problem(.badRequest, code: "request.invalid_position", detail: "X-Chronicle-After must be a position from X-Chronicle-Position")
        }
        return try await wait(checkpoint, timeout)
    }

    /// `If-Match: "3"` (or `3`, or `W/"3"`) as an expected version; `*` or none means any.
    static func ifMatch(_ request: Request) throws -> Int64? {
        guard let raw = request.headers[.ifMatch]?.trimmingCharacters(in: .whitespaces), raw != "*" else { return nil }
        let bare = raw.replacingOccurrences(of: "W/", with: "").trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        guard let version = Int64(bare), version >= 0 else {
            throw Problem(.badRequest, code: "request.invalid_if_match", detail: "If-Match must be an ETag this API returned, e.g. \"3\"")
        }
        return version
    }

    /// A path id; one that is not a UUID names nothing, so it answers `missing` (a 404) too.
    static func pathID(_ context: ChronicleRequestContext, _ name: String, missing: Problem) throws -> UUID {
        guard let text = context.parameters.get(name), let id = UUID(uuidString: text) else { throw missing }
        return id
    }

    /// `page` (from 1) and `pageSize` (1 to 100, default 20); `page_size` is accepted too.
    static func paging(_ request: Request) throws -> (page: Int, pageSize: Int) {
        let page = try integer(request, "page", default: 1, range: 1...1_000_000)
        let size = request.uri.queryParameters.get("pageSize") != nil ? "pageSize" : "page_size"
        return (page, try integer(request, size, default: 20, range: 1...100))
    }

    static func integer(_ request: Request, _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = request.uri.queryParameters.get(name) else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw Problem(.badRequest, code: "request.invalid_query", detail: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }
}

extension CommandContext {
    /// The command's identity from the request: `Idempotency-Key` (or a new id), the principal as
    /// user and tenant, and the request id as the correlation id.
    static func from(_ request: Request, context: ChronicleRequestContext) throws -> CommandContext {
        let principal = try context.requirePrincipal()
        let key = request.headers[.init("Idempotency-Key")!]
        if let key, !TextLimit(characters: 1...200).admits(key) || key.contains(where: { $0.isNewline }) {
            throw Problem(.badRequest, code: "request.invalid_idempotency_key", detail: "Idempotency-Key must be 1 to 200 characters on one line")
        }
        return CommandContext(
            commandID: key ?? UUID.random().uuidString.lowercased(), userID: principal.userID, tenantID: principal.tenantID,
            correlationID: context.requestID)
    }

    /// A new resource's id, derived from the command so a repeated request names the same one.
    func derivedID(_ kind: String) -> UUID {
        DeterministicID.v5(namespace: DeterministicID.eventNamespace, name: "\(tenantID ?? "")/\(userID ?? "")/\(commandID)/\(kind)")
    }
}
