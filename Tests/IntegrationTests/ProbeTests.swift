import Adapters
import Testing

/// The hiredis and rabbitmq-c probes `/health` uses, against the real servers and a closed port.
@Suite struct ProbeTests {
    @Test func redisAnswersPing() async throws {
        try await RedisProbe.ping(try TestServers.redis())
    }

    @Test func aClosedRedisPortIsAReadableFailure() async throws {
        var settings = try TestServers.redis()
        settings.port = 1
        await #expect(throws: RedisError.self) { try await RedisProbe.ping(settings, timeout: .seconds(1)) }
    }

    @Test func rabbitMQAcceptsALogin() async throws {
        try await AMQPProbe.check(try TestServers.amqp())
    }

    @Test func wrongRabbitMQCredentialsAreAReadableFailure() async throws {
        var settings = try TestServers.amqp()
        settings.password = "wrong"
        await #expect(throws: AMQPError.self) { try await AMQPProbe.check(settings) }
    }

    @Test func aClosedRabbitMQPortIsAReadableFailure() async throws {
        var settings = try TestServers.amqp()
        settings.port = 1
        await #expect(throws: AMQPError.self) { try await AMQPProbe.check(settings, timeout: .seconds(1)) }
    }

    @Test func settingsParseTheirURLs() throws {
        let pg = try PostgresSettings(url: "postgres://alice:secret@db.local:6543/events?sslmode=require")
        #expect(pg.host == "db.local" && pg.port == 6543 && pg.username == "alice" && pg.database == "events" && pg.tls == .require)
        #expect(!pg.redacted.contains("secret"))
        #expect(throws: ConfigurationError.self) { try PostgresSettings(url: "mysql://x") }
        #expect(throws: ConfigurationError.self) { try PostgresSettings(url: "postgres://h/db?sslmode=bogus") }
        #expect(pg.connectTimeout == .seconds(10))
        #expect(try PostgresSettings(url: "postgres://h/db?connect_timeout=30").connectTimeout == .seconds(30))
        #expect(throws: ConfigurationError.self) { try PostgresSettings(url: "postgres://h/db?connect_timeout=soon") }
        let amqp = try AMQPSettings(url: "amqp://u:p@mq:5673/%2f")
        #expect(amqp.virtualHost == "/" && amqp.port == 5673 && amqp.username == "u")
        #expect(try AMQPSettings(url: "amqp://mq/tenant-a").virtualHost == "tenant-a")
        #expect(try RedisSettings(url: "redis://:pw@cache:7000/3").database == 3)
        #expect(throws: ConfigurationError.self) { try RedisSettings(url: "redis://cache/notanumber") }
    }
}
