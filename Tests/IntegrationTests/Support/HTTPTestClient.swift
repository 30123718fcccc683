import Adapters
import Commands
import Events
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

    /// No cache: a test must see what the server answers now.
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        return URLSession(configuration: configuration)
    }()

    let base: String
    /// Sent as `Authorization: Bearer` when set.
    var token: String?

    init(base: String, token: String? = nil) {
        self.base = base
        self.token = token
    }

    func authorized(_ token: String) -> HTTPTestClient { HTTPTestClient(base: base, token: token) }

    /// Registers a user straight into the database (as `chronicle users create` does) and signs
    /// in through `POST /api/v1/auth/token`; returns a client that sends the token.
    func signIn(
        _ database: ChronicleDatabase, email: String = "user-\(UUID().uuidString.prefix(8))@example.com", roles: [UserRole] = [.member],
        tier: UserTier = .free
    ) async throws -> HTTPTestClient {
        let password = "correct horse battery staple"
        let handler = CommandHandler<UserDecider>(store: database.eventStore)
        let register = RegisterUser(email: email, displayName: email, tenantID: "t1", tier: tier, roles: roles, now: Date())
        _ = try await handler.handle(.register(register), on: UserDecider.streamID(register.userID), context: CommandContext(userID: "test"))
        try await PostgresCredentialStore(client: database.client, logger: TestServers.logger)
            .setPasswordHash(try await ScryptPasswordHasher(logN: 10).hash(password), of: register.userID)
        let reply = try await send("POST", "/api/v1/auth/token", json: ["username": email, "password": password])
        guard let token = reply.json["access_token"] as? String else {
            throw TestServers.NotConfigured(variable: "a token for \(email): \(reply.status) \(reply.text)")
        }
        return authorized(token)
    }

    func send(_ method: String, _ path: String, json: [String: Any]? = nil, headers: [String: String] = [:], timeout: TimeInterval = 30) async throws -> Reply {
        try await send(
            method, path, body: try json.map { try JSONSerialization.data(withJSONObject: $0) }, contentType: json == nil ? nil : "application/json",
            headers: headers, timeout: timeout)
    }

    /// Any body, with its Content-Type (a multipart upload).
    func send(
        _ method: String, _ path: String, body: Data?, contentType: String?, headers: [String: String] = [:], timeout: TimeInterval = 30
    ) async throws -> Reply {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        request.cachePolicy = .reloadIgnoringLocalCacheData
        if let body {
            request.httpBody = body
            if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        }
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await Watchdog.step("\(method) \(base)\(path)") { try await Self.session.data(for: request) }
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
    /// As a well-behaved client polls: the wait grows from 100 ms to 1 s, and a 429 waits its
    /// Retry-After. Polling every 100 ms spent a user's 100 requests a minute in 10 s on a loaded
    /// machine, and the test's next request was refused.
    func poll(_ path: String, timeout: Duration = .seconds(60), until done: ([String: Any]) -> Bool) async throws -> Reply {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var last = try await send("GET", path)
        var wait = Duration.milliseconds(100)
        while last.status == 429 || !done(last.json), ContinuousClock.now < deadline {
            let retryAfter = last.status == 429 ? last.headers["retry-after"].flatMap(Int.init).map { Duration.seconds($0) } : nil
            try await Task.sleep(for: retryAfter ?? wait)
            wait = min(.seconds(1), wait * 1.5)
            last = try await send("GET", path)
        }
        return last
    }
}
