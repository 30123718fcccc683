import API
import Commands
import Adapters
import Events
import Foundation
import Logging
import Projections
import ServiceLifecycle
import Workers

/// A module's manifest: everything Chronicle needs to know about it, in one place in code.
/// `Modules.all` lists the modules; the composition builds the application from that list, so a
/// module is written once, in its own folders.
///
/// - `events`, `contracts` and `projections` are data: the composition registers the event types
///   (with their upcasters), gives the relay the contracts, and runs, lists and rebuilds the
///   projections.
/// - `assemble` reads the module's configuration section through `Settings` (validated at start)
///   and adds what this process's roles call for: workers, routes, health checks, supervised
///   runs, and capabilities other modules may use.
public protocol ChronicleModule: Sendable {
    /// Stable and lower-case: names health checks and documentation.
    var name: String { get }
    /// Every event type the module has ever stored, with upcasters.
    var events: [EventRegistry] { get }
    /// What its events publish to RabbitMQ: integration events and work messages.
    var contracts: [IntegrationContract] { get }
    /// Its read models.
    var projections: [ProjectionDeclaration] { get }
    /// Its configuration section: the settings it reads, each with its default and meaning.
    var settings: [SettingDescription] { get }
    /// Its deciders, by stream category: the audit routes fold a stream with its own to show its
    /// state as of a version or a time.
    var deciders: [AuditedDecider] { get }
    /// Reads and validates its configuration section, with no side effect: every module is
    /// checked before any is assembled, so a bad setting stops the process before it starts
    /// anything.
    func check(_ settings: Settings) throws
    /// Adds the module's parts to the application being built.
    func assemble(into app: inout Assembly) async throws
}

extension ChronicleModule {
    public var deciders: [AuditedDecider] { [] }
}

/// One documented setting of a module's configuration section.
public struct SettingDescription: Sendable, Hashable {
    public var key: String
    public var defaultValue: String
    public var meaning: String

    public init(_ key: String, _ defaultValue: String, _ meaning: String) {
        self.key = key
        self.defaultValue = defaultValue
        self.meaning = meaning
    }

    /// The environment variable it is read from.
    public var variable: String { Settings.variable(key) }
}

/// The roles a process runs (`chronicle serve --roles`).
public enum Role: String, CaseIterable, Sendable {
    case api, projectors, relay, workers
}

/// The application being built from the modules: what each module's `assemble` adds to.
public struct Assembly: Sendable {
    public let platform: Platform
    public let settings: Settings
    public let roles: Set<Role>
    /// Long-lived services (workers, module services).
    public private(set) var services: [any Service] = []
    public private(set) var workers: [ModuleWorker] = []
    public private(set) var healthChecks: [HealthCheck] = []
    public private(set) var routes: [RouteMount] = []
    public private(set) var webSocketRoutes: [RouteMount] = []
    public private(set) var supervised: [SupervisedRuns] = []
    /// Authentication for `/api/v1`: the Identity module's.
    public var identity: AppDependencies.Identity?
    private var capabilities: [ObjectIdentifier: any Sendable] = [:]

    public init(platform: Platform, settings: Settings, roles: Set<Role>) {
        self.platform = platform
        self.settings = settings
        self.roles = roles
    }

    public var logger: Logger { platform.logger }

    /// A worker, with its `/health` check (`worker.<name>`).
    public mutating func add(worker declared: ModuleWorker) {
        let worker = declared.worker
        workers.append(declared)
        services.append(worker)
        healthChecks.append(
            HealthCheck(name: "worker.\(worker.name)", critical: false) {
                if let problem = worker.status.problem() { throw AssemblyError("cannot take work: \(problem)") }
            })
    }

    public mutating func add(service: any Service) { services.append(service) }
    public mutating func add(healthCheck: HealthCheck) { healthChecks.append(healthCheck) }
    public mutating func add(routes mount: RouteMount) { routes.append(mount) }
    /// WebSocket upgrades under `/api/v1` (tried before the HTTP routes for upgrade requests).
    public mutating func add(webSocketRoutes mount: RouteMount) { webSocketRoutes.append(mount) }
    /// Runs the watchdog fails when they stop making progress.
    public mutating func supervise(_ runs: SupervisedRuns) { supervised.append(runs) }

    /// Offers a capability to the modules assembled after this one (by its type).
    public mutating func provide<T: Sendable>(_ capability: T) { capabilities[ObjectIdentifier(T.self)] = capability }
    public func capability<T: Sendable>(_ type: T.Type) -> T? { capabilities[ObjectIdentifier(T.self)] as? T }
}

/// A health check's failure, in words.
struct AssemblyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
