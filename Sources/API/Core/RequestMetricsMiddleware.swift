import Hummingbird
import HTTPTypes
import Metrics
import Synchronization

/// Hummingbird's `MetricsMiddleware` under the same names and labels (`hb.requests`,
/// `http.server.request.duration`, `hb.request.errors`, `http.server.active_requests`), with one
/// difference: a response whose body is a single buffer is counted when the handler returns it.
/// Hummingbird's wraps every body in a closure to count after the write, which turns the one
/// batched write of head, body and end into three, each its own hop to the event loop and its own
/// `write(2)` (strace and perf on `GET …/executions/{id}`). A streamed body (no length: server-sent
/// events, live runs) is still counted once it has been written, so its duration is the stream's.
public struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let cache: Cache

    /// - Parameter factory: where the metrics go (the process's bootstrapped system by default).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        cache = Cache(factory: factory)
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let active = cache.active(request.method)
        active.increment()
        do {
            var response = try await next(request, context)
            let status = response.status
            let done: @Sendable () -> Void = {
                let metrics = cache.endpoint(.init(route: context.endpointPath ?? "Unknown", method: request.method, status: status))
                metrics.requests.increment()
                metrics.duration.recordNanoseconds(Self.nanoseconds(since: start))
                active.decrement()
            }
            if response.body.contentLength != nil {
                done()
            } else {
                let body = response.body
                response.body = ResponseBody(contentLength: nil) { writer in
                    defer { done() }
                    try await body.write(writer)
                }
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let metrics = cache.endpoint(.init(route: context.endpointPath ?? "NotFound", method: request.method, status: status))
            metrics.requests.increment()
            metrics.errors.increment()
            active.decrement()
            throw error
        }
    }

    static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = start.duration(to: .now).components
        return elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
    }

    /// The metric objects by method and by route, method and status: made once, then looked up.
    final class Cache: Sendable {
        struct Key: Hashable {
            let route: String
            let method: HTTPRequest.Method
            let status: HTTPResponse.Status
        }

        struct Endpoint: Sendable {
            let requests: Counter
            let duration: Metrics.Timer
            let errors: Counter

            init(_ key: Key, factory: any MetricsFactory) {
                let labels = [
                    ("http.route", key.route), ("http.request.method", key.method.description),
                    ("http.response.status_code", key.status.code.description),
                ]
                requests = Counter(label: "hb.requests", dimensions: labels, factory: factory)
                duration = Metrics.Timer(
                    label: "http.server.request.duration", dimensions: labels, preferredDisplayUnit: .seconds, factory: factory)
                errors = Counter(label: "hb.request.errors", dimensions: [
                    ("http.route", key.route), ("http.request.method", key.method.description), ("error.type", key.status.code.description),
                ], factory: factory)
            }
        }

        private let factory: any MetricsFactory
        private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])
        private let endpoints = Mutex<[Key: Endpoint]>([:])

        init(factory: any MetricsFactory) {
            self.factory = factory
        }

        func active(_ method: HTTPRequest.Method) -> Meter {
            methods.withLock { methods in
                if let meter = methods[method] { return meter }
                let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)], factory: factory)
                methods[method] = meter
                return meter
            }
        }

        func endpoint(_ key: Key) -> Endpoint {
            endpoints.withLock { endpoints in
                if let endpoint = endpoints[key] { return endpoint }
                let endpoint = Endpoint(key, factory: factory)
                endpoints[key] = endpoint
                return endpoint
            }
        }
    }
}
