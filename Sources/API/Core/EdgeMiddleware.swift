import Commands
import Foundation
import HTTPTypes
import Hummingbird

/// `X-Request-ID`: taken from the request when it is sane (1 to 200 visible ASCII characters),
/// generated otherwise; logged with every line of the request, returned on every response (errors
/// too), and stored as the correlation id of the events a command appends.
public struct RequestIDMiddleware: RouterMiddleware {
    public typealias Context = ChronicleRequestContext
    public static let header = HTTPField.Name("X-Request-ID")!

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let given = request.headers[Self.header].flatMap { id in
            (1...200).contains(id.count) && id.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F } ? id : nil
        }
        let id = given ?? UUID.random().uuidString.lowercased()
        context.requestID = id
        context.logger[metadataKey: "http.request.id"] = "\(id)"
        var response = try await respond(request, context, next)
        response.headers[Self.header] = id
        return response
    }
}

/// CORS for the configured origins (exact matches; `*` allows any). Preflights are answered
/// here, before authentication (a browser sends them without the token). Tokens travel in the
/// `Authorization` header, never cookies, so credentials are not allowed.
public struct CORSMiddleware: RouterMiddleware {
    public typealias Context = ChronicleRequestContext
    let origins: Set<String>

    public init(origins: [String]) {
        self.origins = Set(origins)
    }

    static let allowMethods = "GET, POST, PATCH, DELETE, OPTIONS"
    static let allowHeaders = "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-ID, X-Chronicle-After"
    static let exposeHeaders = "ETag, Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-ID, X-Chronicle-Position"

    func allows(_ origin: String) -> Bool { origins.contains("*") || origins.contains(origin) }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [.vary: "Origin"]
            if allows(origin) {
                headers[.accessControlAllowOrigin] = origin
                headers[.accessControlAllowMethods] = Self.allowMethods
                headers[.accessControlAllowHeaders] = Self.allowHeaders
                headers[.accessControlMaxAge] = "600"
            }
            return Response(status: .noContent, headers: headers)
        }
        var response = try await respond(request, context, next)
        response.headers[.vary] = "Origin"
        if allows(origin) {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = Self.exposeHeaders
        }
        return response
    }
}

/// Runs the rest of the chain and turns a thrown error into its response, so a middleware can
/// add headers to error responses too.
func respond(
    _ request: Request, _ context: ChronicleRequestContext,
    _ next: (Request, ChronicleRequestContext) async throws -> Response
) async throws -> Response {
    do {
        return try await next(request, context)
    } catch let error as any HTTPResponseError {
        return try error.response(from: request, context: context)
    }
}
