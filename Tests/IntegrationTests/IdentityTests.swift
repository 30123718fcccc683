import Adapters
import Commands
import Events
import Foundation
import Testing

/// Identity against the real servers: owner isolation with the real read models, rate limits
/// in Redis, disabling a user through the CLI.
@Suite(.serialized) struct IdentityTests {
    @Test func aUserCannotReadListChangeExecuteOrCancelAnothersAgentsAndAnAdminCan() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { alice, _ in
                let bob = try await alice.signIn(database)
                let admin = try await alice.signIn(database, roles: [.admin])
                let agent = try await AgentsEndToEndTests.createAgent(alice)
                let execution = try await AgentsEndToEndTests.execute(alice, agent: agent, input: "hello")
                let path = "/api/v1/agents/\(agent)/executions/\(execution)"
                _ = try await alice.poll(path, until: AgentsEndToEndTests.terminal)
                let mine = try await alice.poll("/api/v1/agents") { ($0["total_count"] as? Int) == 1 }
                #expect(mine.json["total_count"] as? Int == 1)

                let bobs = try await bob.send("GET", "/api/v1/agents")
                #expect(bobs.json["total_count"] as? Int == 0, "another user's list shows someone else's agent")
                let attempts: [(String, String, [String: Any]?)] = [
                    ("GET", "/api/v1/agents/\(agent)", nil), ("PATCH", "/api/v1/agents/\(agent)", ["name": "stolen"]),
                    ("GET", "/api/v1/agents/\(agent)/usage", nil), ("POST", "/api/v1/agents/\(agent)/execute", ["input": "x"]),
                    ("GET", "/api/v1/agents/\(agent)/executions", nil), ("GET", path, nil), ("GET", path + "/stream", nil),
                    ("POST", path + "/cancel", nil), ("DELETE", "/api/v1/agents/\(agent)", nil),
                ]
                for (method, uri, body) in attempts {
                    let reply = try await bob.send(method, uri, json: body)
                    #expect(reply.status == 404, "\(method) \(uri) as another user answered \(reply.status)")
                    #expect(reply.headers["content-type"] == "application/problem+json")
                }
                // The admin sees and changes it.
                #expect(try await admin.send("GET", "/api/v1/agents/\(agent)").status == 200)
                #expect(try await admin.send("GET", path).status == 200)
                #expect((try await admin.send("GET", "/api/v1/agents").json["total_count"] as? Int ?? 0) >= 1)
                #expect(try await admin.send("PATCH", "/api/v1/agents/\(agent)", json: ["instructions": "admin was here"]).status == 200)
                // And nothing of Bob's attempts reached the agent's stream.
                let events = try await database.eventStore.readStream("agent-\(agent)", from: 1, direction: .forward, limit: 100)
                #expect(events.map(\.eventType) == ["AgentCreated", "AgentInstructionsChanged"])
            }
        }
    }

    @Test func theEleventhExecuteInAMinuteIs429AndAnotherUserIsUnaffected() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { alice, _ in
                let bob = try await alice.signIn(database)
                let agent = try await AgentsEndToEndTests.createAgent(alice)
                var position = ""
                for n in 1...10 {
                    let reply = try await alice.send("POST", "/api/v1/agents/\(agent)/execute", json: ["input": "run \(n)"])
                    #expect(reply.status == 202, "execute \(n) answered \(reply.status)")
                    #expect(reply.headers["ratelimit-remaining"] == String(10 - n))
                    position = reply.headers["x-chronicle-position"] ?? position
                }
                let eleventh = try await alice.send("POST", "/api/v1/agents/\(agent)/execute", json: ["input": "one too many"])
                #expect(eleventh.status == 429)
                #expect(eleventh.json["code"] as? String == "rate_limit.exceeded")
                let retry = Int(eleventh.headers["retry-after"] ?? "") ?? 0
                #expect((1...60).contains(retry))
                #expect(eleventh.headers["ratelimit-remaining"] == "0")
                // Reads still work for her, and Bob's executes are his own.
                // (After her last write: on a loaded machine the read models may lag, and a
                // read that does not wait for them may be a 404, which is not what this checks.)
                let reads = try await alice.send("GET", "/api/v1/agents/\(agent)/executions", headers: ["X-Chronicle-After": position])
                #expect(reads.status == 200, "her read answered \(reads.status): \(reads.json)")
                let bobsAgent = try await AgentsEndToEndTests.createAgent(bob)
                #expect(try await bob.send("POST", "/api/v1/agents/\(bobsAgent)/execute", json: ["input": "mine"]).status == 202)
                // The refused request created nothing.
                let count = try await database.client.query(
                    "SELECT count(*) FROM events WHERE event_type = 'AgentExecutionRequested' AND data->>'agent_id' = \(agent.uppercased())",
                    logger: TestServers.logger
                ).decode(Int64.self).all().first
                #expect(count == 10)
            }
        }
    }

    @Test func disablingAUserStopsTheirTokensWithinFiveSeconds() async throws {
        try await TestServers.withDatabase { database in
            try await AgentsEndToEndTests.withServer(database) { client, _ in
                let email = "leaver-\(UUID().uuidString.prefix(6))@example.com"
                let leaver = try await client.signIn(database, email: email)
                #expect(try await leaver.send("GET", "/api/v1/auth/me").status == 200)
                let disabled = try await CLIProcess.run(["users", "disable", email, "--database-url", CLITests.url(database)])
                #expect(disabled.status == 0, "\(disabled.stderr)")
                #expect(disabled.stdout.contains("disabled"))
                // The bound is on the server: no request *sent* later than five seconds (and a
                // margin) after the disable may be served. When a reply arrives is up to how
                // busy this machine is, so a request's send time is what counts.
                let clock = ContinuousClock()
                let started = clock.now
                var lastServedSentAt = started
                var last: HTTPTestClient.Reply
                repeat {
                    let sent = clock.now
                    last = try await leaver.send("GET", "/api/v1/auth/me")
                    if last.status == 200 {
                        lastServedSentAt = sent
                        try await Task.sleep(for: .milliseconds(100))
                    }
                } while last.status == 200 && clock.now - started < .seconds(30)
                let stream = "user-\(UserDecider.userID(email: email).uuidString.lowercased())"
                let types = try await database.eventStore.readStream(stream, from: 1, direction: .forward, limit: 10).map(\.eventType)
                #expect(last.status == 401, "still \(last.status) \(last.text); the user's stream: \(types); CLI said: \(disabled.stdout)")
                #expect(last.json["code"] as? String == "auth.user_disabled")
                #expect(
                    lastServedSentAt - started <= .seconds(6),
                    "a request sent \(lastServedSentAt - started) after the user was disabled was still served")
            }
        }
    }

    @Test func theRedisLimiterIsExactAndARefusedRequestCountsAgainstNothing() async throws {
        let limiter = RedisRateLimiter(redis: RedisClient(settings: try TestServers.redis(), logger: TestServers.logger), keyspace: "test-\(UUID())")
        let a = RateLimit(key: "a", limit: 3)
        let b = RateLimit(key: "b", limit: 5)
        for n in 1...3 {
            let decision = try await limiter.check([a, b])
            #expect(decision.allowed && decision.remaining == 3 - n)
        }
        let refused = try await limiter.check([a, b])
        #expect(!refused.allowed && refused.remaining == 0 && (1...60).contains(refused.retryAfterSeconds))
        // b counted only the three admitted requests: two left.
        let onlyB = try await limiter.check([b])
        #expect(onlyB.allowed && onlyB.remaining == 1)
        // A short window frees up again.
        let quick = RateLimit(key: "quick", limit: 1, window: .milliseconds(300))
        #expect(try await limiter.check([quick]).allowed)
        #expect(!(try await limiter.check([quick]).allowed))
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await limiter.check([quick]).allowed)
    }
}
