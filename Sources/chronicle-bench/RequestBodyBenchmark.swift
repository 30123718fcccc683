import CLISupport
import API
import Events
import Foundation
import Hummingbird

/// What refusing a deeply nested body costs (`BoundedJSONDecoder`'s linear scan), beside what
/// decoding the same body cost before the bound (JSONDecoder into free-form parameters, whose
/// cost grows faster than linearly with depth). In-process, no server: the figures are the
/// decoder's, not the network's.
struct RequestBodyBenchmark {
    let report: BenchReport

    struct Execute: Decodable {
        var input: String
        var parameters: [String: JSONValue]?
    }

    static func body(depth: Int) -> Data {
        Data(("{\"input\": \"hi\", \"parameters\": {\"a\": " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}}").utf8)
    }

    /// The median of `runs` timings of `work`, in microseconds.
    static func median(_ runs: Int, _ work: () -> Void) -> Double {
        var samples: [Double] = []
        for _ in 0..<runs {
            let started = ContinuousClock.now
            work()
            let elapsed = ContinuousClock.now - started
            samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        return samples.sorted()[runs / 2]
    }

    func run() {
        for depth in [500, 100_000] {
            let buffer = ByteBuffer(data: Self.body(depth: depth))
            let refused = Self.median(25) { _ = try? BoundedJSONDecoder.checkDepth(buffer, max: BoundedJSONDecoder.maxDepth) }
            report.emit("api.body.refuse_nested", refused, unit: "µs", ["depth": .number(Double(depth)), "bytes": .number(Double(buffer.readableBytes))])
        }
        // An accepted body is scanned whole: the largest one allowed, flat.
        let flat = ByteBuffer(string: "{\"input\": \"" + String(repeating: "x", count: (1 << 20) - 20) + "\"}")
        let scanned = Self.median(25) { _ = try? BoundedJSONDecoder.checkDepth(flat, max: BoundedJSONDecoder.maxDepth) }
        report.emit("api.body.scan_accepted", scanned, unit: "µs", ["bytes": .number(Double(flat.readableBytes))])
        // The peer: the old path decoded such a body before anything looked at it.
        let body = Self.body(depth: 500)
        let decoded = Self.median(5) { _ = try? JSONDecoder().decode(Execute.self, from: body) }
        report.emit("api.body.decode_nested_unbounded", decoded, unit: "µs", ["depth": .number(500), "bytes": .number(Double(body.count))])
    }
}
