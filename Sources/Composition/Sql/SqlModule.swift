import API
import Adapters
import Commands
import Events
import Foundation
import Logging
import PostgresNIO
import Projections
import Workers

/// The Text-to-SQL module's configuration section.
struct SqlConfiguration {
    var readerRole: String
    var readerPassword: String?
    var limits: SqlExecutor.Limits
    var model: String?
    var workers: Int
    var credentialsKey: String?

    static let settings: [SettingDescription] = [
        .init("chronicle.sql.reader_role", "chronicle_sql_reader", "The login role queries run as (created if this login may; it gets SELECT on chronicle_data only)"),
        .init("chronicle.sql.reader_password", "none", "Its password, where the server asks for one"),
        .init("chronicle.sql.timeout_seconds", "5", "A query's statement timeout (1 to 60)"),
        .init("chronicle.sql.max_rows", "1000", "Rows a result keeps (1 to 100000); the count is of all"),
        .init("chronicle.sql.max_kib", "1024", "Bytes of values a result keeps, in KiB (1 to 65536)"),
        .init("chronicle.sql.max_cost", "1000000", "The planner's estimated cost above which a query is refused before it runs"),
        .init("chronicle.sql.model", "the agents' default model", "The model that writes SQL; without a model service, the offline translator"),
        .init("chronicle.sql.workers", "2", "Queries answered at once per process"),
        .init(
            "chronicle.sql.credentials_key", "none: outside data sources are refused",
            "AES-GCM key sealing registered databases' credentials, 32 bytes in base64"),
    ]

    init(_ settings: Settings) throws {
        readerRole = settings.text("chronicle.sql.reader_role", default: "chronicle_sql_reader")
        readerPassword = settings.text("chronicle.sql.reader_password", secret: true)
        var limits = SqlExecutor.Limits()
        limits.statementTimeout = .seconds(try settings.integer("chronicle.sql.timeout_seconds", default: 5, range: 1...60))
        limits.maximumRows = try settings.integer("chronicle.sql.max_rows", default: 1000, range: 1...100_000)
        limits.maximumBytes = try settings.integer("chronicle.sql.max_kib", default: 1024, range: 1...65_536) * 1024
        limits.maximumCost = Double(try settings.integer("chronicle.sql.max_cost", default: 1_000_000, range: 1...1_000_000_000_000))
        self.limits = limits
        model = settings.text("chronicle.sql.model")
        workers = try settings.integer("chronicle.sql.workers", default: 2, range: 1...64)
        credentialsKey = settings.text("chronicle.sql.credentials_key", secret: true)
        if let credentialsKey { _ = try SqlDatasources.key(base64: credentialsKey) }
    }
}

/// Text-to-SQL: questions in natural language over the platform's own data, answered by SQL
/// that passes four independent layers (the validator on PostgreSQL's grammar, a reader role that
/// sees only the asker's rows, a read-only transaction that is rolled back, a cost gate and caps).
public struct SqlModule: ChronicleModule {
    public init() {}

    public var name: String { "sql" }
    public var events: [EventRegistry] { [.sql] }
    public var contracts: [IntegrationContract] { IntegrationContract.sql }
    public var projections: [ProjectionDeclaration] { [] }
    public var settings: [SettingDescription] { SqlConfiguration.settings }
    public var deciders: [AuditedDecider] { [AuditedDecider(SqlQueryDecider.self)] }

    public func check(_ settings: Settings) throws { _ = try SqlConfiguration(settings) }

    public func assemble(into app: inout Assembly) async throws {
        let configuration = try SqlConfiguration(app.settings)
        let platform = app.platform
        let readerSettings = platform.database.settings.with(username: configuration.readerRole, password: configuration.readerPassword)
        let reader = PostgresClient(configuration: readerSettings.clientConfiguration, backgroundLogger: app.logger)
        app.add(service: reader)
        let executor = SqlExecutor(
            admin: platform.database.client, reader: reader, readerRole: configuration.readerRole, limits: configuration.limits, logger: app.logger)
        let datasources = SqlDatasources(
            admin: platform.database.client, store: platform.database.eventStore,
            key: try configuration.credentialsKey.map { try SqlDatasources.key(base64: $0) }, limits: configuration.limits, logger: app.logger)
        if app.roles.contains(.workers) {
            guard let chat = app.capability(ChatModel.self) else { throw AssemblyError("the sql module needs the llm module's model") }
            let worker = SqlQueryWorker(
                store: platform.database.eventStore, model: chat.offline ? nil : chat.model, modelName: configuration.model ?? chat.defaultModel,
                sources: { id in
                    if id == SqlQueryDecider.ownData { return executor.ownData }
                    return UUID(uuidString: id).map { datasources.source($0) }
                }, logger: app.logger)
            app.add(
                worker: platform.worker(
                    name: "sql-generate", exchange: "sql.generate", delays: [.seconds(1), .seconds(5), .seconds(30)],
                    concurrency: configuration.workers, stallAfter: .seconds(300), giveUp: worker.giveUp, handler: worker.handle))
            app.logger.info("sql workers", metadata: ["translator": "\(chat.offline ? OfflineSqlTranslator.name : configuration.model ?? chat.defaultModel)"])
        }
        if app.roles.contains(.api) {
            app.add(
                routes: SqlController(store: platform.database.eventStore, schema: { try await executor.schema() }, datasources: datasources).mount)
        }
    }
}
