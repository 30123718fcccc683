// swift-tools-version:6.0
import PackageDescription

// Layers, per shared/ARCHITECTURE.md. Events and Commands are the domain: Foundation (and, for
// name-based ids, swift-crypto) only. Adapters is the only target that touches PostgresNIO,
// hiredis, rabbitmq-c, libseccomp or the HTTP client.
let package = Package(
    name: "chronicle",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "chronicle", targets: ["chronicle"]),
        .executable(name: "chronicle-sandbox", targets: ["chronicle-sandbox"]),
        .executable(name: "chronicle-bench", targets: ["chronicle-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        // 1.16: InMemoryLogging, which the integration tests read warnings with.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.1.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.25.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.25.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.0.0"),
    ],
    targets: [
        // System libraries: wired now so every build proves they are installed and link.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),
        // PostgreSQL's own grammar (libpg_query, PG 15), for the Text-to-SQL validator.
        .systemLibrary(name: "CPgQuery", path: "Sources/CPgQuery", providers: [.apt(["libpg-query-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),

        // The sandbox's isolation runner: single-threaded C, because namespaces, mounts, rlimits
        // and seccomp are set between fork and exec (see its header comment).
        .executableTarget(
            name: "chronicle-sandbox", dependencies: ["CSeccomp"],
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"])]),

        .target(name: "Events"),
        .target(
            name: "Commands",
            dependencies: [
                "Events",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Projections",
            dependencies: [
                "Events", "Commands",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What runs the work the relay hands out: the worker loop, the attempt runner, the
        // watchdog, and each module's runner (Agents/, Sandbox/).
        .target(
            name: "Workers",
            dependencies: [
                "Events", "Commands",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Adapters",
            dependencies: [
                "Events", "Commands", "Projections", "Workers",
                "CHiredis", "CRabbitMQ", "CSeccomp", "CPgQuery",
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "API",
            dependencies: [
                "Events", "Commands", "Projections", "Workers",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // For the errors the HTTP parser and body reads raise, which become problems.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("openapi.yaml")]
        ),
        // The composition root as a library: each module's manifest, the typed configuration, and
        // the application built from the list of modules. The CLI, the tests and the benchmarks
        // all build Chronicle through it.
        .target(
            name: "Composition",
            dependencies: [
                "Events", "Commands", "Projections", "Workers", "Adapters", "API",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What both executables share: connection options, logging, one-line errors.
        .target(
            name: "CLISupport",
            dependencies: [
                "Adapters", "Composition",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "chronicle",
            dependencies: [
                "Events", "Commands", "Projections", "Workers", "Adapters", "API", "Composition", "CLISupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // `make bench`: the benchmarks, kept out of the production binary.
        .executableTarget(
            name: "chronicle-bench",
            dependencies: [
                "Events", "Commands", "Projections", "Workers", "Adapters", "API", "Composition", "CLISupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // The fixtures cover every module's events: the registry of all of them is the composition's.
        .testTarget(name: "EventsTests", dependencies: ["Events", "Composition"], resources: [.copy("Fixtures")]),
        // One contract suite for every EventStore adapter, run by CommandsTests (in memory) and
        // IntegrationTests (Postgres).
        .target(name: "EventStoreContract", dependencies: ["Events", "Commands"], path: "Tests/EventStoreContract"),
        .testTarget(name: "CommandsTests", dependencies: ["Events", "Commands", "EventStoreContract"]),
        .testTarget(name: "ProjectionsTests", dependencies: ["Events", "Commands", "Projections"]),
        .testTarget(name: "WorkersTests", dependencies: ["Events", "Commands", "Workers"]),
        .testTarget(
            name: "APITests",
            dependencies: [
                "API", "Adapters", "Commands", "Events", "Projections", "Workers", "Composition",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                // The request metrics middleware's test records into swift-metrics' TestMetrics.
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Events", "Commands", "Projections", "Workers", "Adapters", "API", "Composition", "EventStoreContract",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
    ]
)
