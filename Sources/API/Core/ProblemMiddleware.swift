import Commands
import Events
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Turns every error a route throws into a `Problem`: domain errors into 4xx, Hummingbird's own
/// errors (unknown route, bad body) into their status, and anything else into a 500 whose text
/// says nothing of the cause (the cause is logged with the request id).
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            throw problem
        } catch {
            let problem = Self.problem(for: error)
            if problem.status == .internalServerError || problem.status == .serviceUnavailable {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            throw problem
        }
    }

    static func problem(for error: any Error) -> Problem {
        switch error {
        case let error as DomainError:
            let status: HTTPResponse.Status =
                switch error.kind {
                case .invalid: .unprocessableContent
                case .notFound: .notFound
                case .conflict: .conflict
                case .tooLarge: .contentTooLarge
                }
            return Problem(status, code: error.code.rawValue, detail: error.message, extensions: Problem.errors(error.violations))
        case let error as CommandHandlerError:
            switch error {
            case .preconditionFailed:
                return Problem(.preconditionFailed, code: "request.version_mismatch", detail: error.description)
            case .concurrencyConflict:
                return Problem(.conflict, code: "request.concurrent_change", detail: "the resource changed concurrently; retry the request")
            case .idempotencyKeyReused:
                return Problem(.unprocessableContent, code: "request.idempotency_key_reused", detail: error.description)
            }
        case EventStoreError.refused:
            return Problem(.unprocessableContent, code: "request.unstorable", detail: "the request holds a value that cannot be stored")
        case EventStoreError.unavailable:
            return Problem(.serviceUnavailable, code: "service.unavailable", detail: "a dependency is unavailable; retry later")
        case let error as HTTPError:
            let code =
                switch error.status {
                case .notFound: "route.not_found"
                case .methodNotAllowed: "route.method_not_allowed"
                case .badRequest: "request.malformed"
                case .contentTooLarge: "request.too_large"
                case .unsupportedMediaType: "request.unsupported_media_type"
                default: "http.\(error.status.code)"
                }
            return Problem(error.status, code: code, detail: error.status.code < 500 ? error.body : nil, headers: error.headers)
        case is NIOTooManyBytesError:
            return Problem(.contentTooLarge, code: "request.too_large", detail: "the request body is too large")
        case is HTTPParserError:
            // A malformed body (a bad chunk, say) surfaces while a route reads it.
            return Problem(.badRequest, code: "request.malformed_http", detail: "the request is not valid HTTP/1.1")
        case is DecodingError:
            return Problem(.badRequest, code: "request.malformed", detail: "the request body is not valid JSON of the expected shape")
        default:
            return Problem(.internalServerError, code: "internal", detail: "an unexpected error occurred")
        }
    }
}
