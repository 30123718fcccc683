import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// JSON over loopback to a `chronicle serve` child, as a user's curl would.
struct HTTPTestClient {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var data: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: data, as: UTF8.self) }
    }

    let base: String

    func send(_ method: String, _ path: String, json: [String: Any]? = nil, headers: [String: String] = [:], timeout: TimeInterval = 30) async throws -> Reply {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (key, value) in http.allHeaderFields { fields["\(key)".lowercased()] = "\(value)" }
        return Reply(status: http.statusCode, headers: fields, data: data)
    }

    /// Polls until `/ready` answers 200 (or fails after `timeout`).
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let reply = try? await send("GET", "/ready", timeout: 2), reply.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestServers.NotConfigured(variable: "a ready server at \(base)")
    }

    /// Polls `path` until `done` holds for its JSON, or `timeout` passes; returns the last reply.
    func poll(_ path: String, timeout: Duration = .seconds(30), until done: ([String: Any]) -> Bool) async throws -> Reply {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var last = try await send("GET", path)
        while !done(last.json), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            last = try await send("GET", path)
        }
        return last
    }
}
