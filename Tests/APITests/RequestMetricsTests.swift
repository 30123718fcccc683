import API
import Hummingbird
import HummingbirdTesting
import MetricsTestKit
import Testing

/// The request metrics under Hummingbird's names: a buffered reply is counted when its handler
/// returns it (so it keeps its single batched write), a streamed one once it has been written,
/// and a thrown error as an error.
@Suite struct RequestMetricsTests {
    @Test func bufferedRepliesStreamsAndErrorsAreEachCountedOnce() async throws {
        let metrics = TestMetrics()
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware(factory: metrics))
        router.get("buffered") { _, _ in "done" }
        router.get("streamed") { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "early "))
                try await Task.sleep(for: .milliseconds(300))
                try await writer.write(ByteBuffer(string: "late"))
                try await writer.finish(nil)
            })
        }
        router.get("refused") { _, _ -> String in throw HTTPError(.badRequest) }
        try await Application(router: router).test(.router) { client in
            for _ in 0..<3 {
                try await client.execute(uri: "/buffered", method: .get) { #expect(String(buffer: $0.body) == "done") }
            }
            try await client.execute(uri: "/streamed", method: .get) { #expect(String(buffer: $0.body) == "early late") }
            try await client.execute(uri: "/refused", method: .get) { #expect($0.status == .badRequest) }
        }
        func labels(_ route: String, _ status: String) -> [(String, String)] {
            [("http.route", route), ("http.request.method", "GET"), ("http.response.status_code", status)]
        }
        #expect(try metrics.expectCounter("hb.requests", labels("/buffered", "200")).totalValue == 3)
        #expect(try metrics.expectTimer("http.server.request.duration", labels("/buffered", "200")).values.count == 3)
        #expect(try metrics.expectCounter("hb.requests", labels("/streamed", "200")).totalValue == 1)
        // Counted after the body's last write, so its duration spans the stream.
        let streamed = try metrics.expectTimer("http.server.request.duration", labels("/streamed", "200")).values
        #expect(streamed.count == 1 && streamed[0] >= 300_000_000, "\(streamed)")
        #expect(try metrics.expectCounter("hb.requests", labels("/refused", "400")).totalValue == 1)
        #expect(try metrics.expectCounter(
            "hb.request.errors", [("http.route", "/refused"), ("http.request.method", "GET"), ("error.type", "400")]).totalValue == 1)
        // Every request ended: the active-request meter is back at zero.
        #expect(try metrics.expectMeter("http.server.active_requests", [("http.request.method", "GET")]).values.last == 0)
    }
}
