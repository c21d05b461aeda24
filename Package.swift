// swift-tools-version:6.0
import PackageDescription

/// The executables allocate with jemalloc (Debian's libjemalloc-dev): librdkafka allocates a message and
/// its two headers on send and frees them after delivery, and glibc's malloc spent a quarter of the
/// producer's time on that; with jemalloc producing takes about 25% less CPU an event (BENCHMARKS.md,
/// "Through the embedded broker"). Libraries and tests keep the system allocator.
let allocator: [LinkerSetting] = [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]

let package = Package(
    name: "Undercurrent",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "undercurrent", targets: ["undercurrent"]),
        .executable(name: "billing-producer", targets: ["billing-producer"]),
        .executable(name: "payments-producer", targets: ["payments-producer"]),
        .executable(name: "engagement-producer", targets: ["engagement-producer"]),
        .executable(name: "marts-consumer", targets: ["marts-consumer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already in the graph through Hummingbird: long-lived parts run as services in one ServiceGroup.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Metrics: instruments through swift-metrics' API, exposed by swift-prometheus' registry (Hummingbird
        // already brings swift-metrics; swift-prometheus adds itself and swift-atomics).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Already in the graph through Hummingbird: a listening address is checked with NIO before any work.
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        // All C lives here: librdkafka's headers plus a shim for its variadic functions.
        .target(
            name: "CRdKafka",
            linkerSettings: [.linkedLibrary("rdkafka")]
        ),
        // The only Swift module that imports CRdKafka.
        .target(
            name: "Kafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")]
        ),
        // libpq, PostgreSQL's C client (Debian's libpq-dev), for the PostgreSQL sink.
        .target(name: "CLibPQ", linkerSettings: [.linkedLibrary("pq")]),
        // The only Swift module that imports CLibPQ: connections, statements, COPY.
        .target(name: "Postgres", dependencies: ["CLibPQ"]),
        // zlib's gzip functions, for compressed archives.
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        .target(name: "Events"),
        // Each process's metrics (a Prometheus registry behind swift-metrics' instruments) and lag in seconds.
        .target(name: "Telemetry", dependencies: [.product(name: "CoreMetrics", package: "swift-metrics"),
                                                  .product(name: "Prometheus", package: "swift-prometheus")]),
        // Event archives (NDJSON, plain or gzip): reading and writing.
        .target(name: "Archives", dependencies: ["Events", "Simulation", "CZlib"]),
        // The product's configuration files: the simulated business (baseline + scenarios) and alert rules.
        .target(name: "Config", dependencies: ["Simulation", "Marts", .product(name: "Yams", package: "Yams")]),
        // SVG charts for the dashboard, reports and load-test pages (pure functions).
        .target(name: "Charts"),
        // Dashboard pages, narrative and API payloads from the marts (pure; served by DashboardHTTP).
        .target(name: "Dashboard", dependencies: ["Marts", "Events", "Charts"]),
        .target(name: "Simulation", dependencies: ["Events"]),
        .target(name: "Marts", dependencies: ["Events"]),
        .target(name: "Checkpoints", dependencies: ["Marts", "Events"]),
        // The dashboard over HTTP (Hummingbird): pages, API, /metrics, the state watcher.
        .target(name: "DashboardHTTP", dependencies: ["Dashboard", "Checkpoints", "Consumer", "Charts", "Events", "Marts", "Telemetry",
                                                     .product(name: "Hummingbird", package: "hummingbird"),
                                                     .product(name: "Logging", package: "swift-log"),
                                                     .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                     .product(name: "NIOCore", package: "swift-nio")]),
        // Alerting and risk scoring against a simulation's ground truth: the oracle, the sweep's figures (pure).
        .target(name: "Evaluation", dependencies: ["Simulation", "Marts", "Events"]),
        // The consumer: a core (partition states, outputs, checkpoint policy) fed by a Kafka and an archive
        // driver, its outputs sent through sinks.
        .target(
            name: "Consumer",
            dependencies: ["Kafka", "Events", "Marts", "Checkpoints", "Archives", "Telemetry", .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        // Mirrors the marts into PostgreSQL after each checkpoint (a ConsumerSink).
        .target(name: "PostgresSink", dependencies: ["Postgres", "Consumer", "Checkpoints", "Marts", "Events", .product(name: "Logging", package: "swift-log")]),
        // The streams into and out of Kafka beside the marts consumer: a producer's simulated business
        // (`ProducerRun`), recording and replaying archives (`Recorder`, `Replayer`), the load test.
        .target(name: "Streams", dependencies: ["Kafka", "Events", "Simulation", "Marts", "Archives", "Config", "Consumer", "Charts", "Telemetry",
                                               .product(name: "Histogram", package: "hdrhistogram-swift"),
                                               .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "UndercurrentCLI",
            dependencies: [
                "Kafka", "Events", "Simulation", "Marts", "Checkpoints", "Archives", "Config", "Consumer", "Charts", "Dashboard", "DashboardHTTP", "Evaluation", "Postgres", "PostgresSink", "Streams", "Telemetry",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "undercurrent", dependencies: ["UndercurrentCLI"], linkerSettings: allocator),
        .executableTarget(name: "billing-producer", dependencies: ["UndercurrentCLI"], linkerSettings: allocator),
        .executableTarget(name: "payments-producer", dependencies: ["UndercurrentCLI"], linkerSettings: allocator),
        .executableTarget(name: "engagement-producer", dependencies: ["UndercurrentCLI"], linkerSettings: allocator),
        .executableTarget(name: "marts-consumer", dependencies: ["UndercurrentCLI"], linkerSettings: allocator),
        // Throughput harness for BENCHMARKS.md (build with -c release).
        .executableTarget(name: "undercurrent-bench", dependencies: ["Streams", "Config", "Consumer", "Postgres", "PostgresSink", "Kafka", "Events", "Simulation", "Marts", "Checkpoints"],
                          linkerSettings: allocator),
        // Helpers every test target shares (temporary directories, the checkout's config, child processes).
        .target(name: "TestSupport", dependencies: ["Config", "Events", "Marts", "Simulation", "Kafka", "Postgres", "PostgresSink", .product(name: "Logging", package: "swift-log")],
                path: "Tests/TestSupport"),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "TestSupport"]),
        .testTarget(name: "TelemetryTests", dependencies: ["Telemetry", "TestSupport"]),
        .testTarget(name: "EventsTests", dependencies: ["Events"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Events", "Config", "TestSupport"]),
        .testTarget(name: "MartsTests", dependencies: ["Marts", "Events", "Simulation", "Config", "TestSupport"]),
        .testTarget(name: "ArchivesTests", dependencies: ["Archives", "Events", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Simulation", "Marts", "Events", "Config", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Marts", "Events", "TestSupport"]),
        .testTarget(name: "ConsumerTests", dependencies: ["Consumer", "Archives", "Config", "Simulation", "Kafka", "Marts", "Events", "Checkpoints", "TestSupport",
                                                         .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "PostgresSinkTests", dependencies: ["PostgresSink", "Postgres", "Consumer", "Marts", "Events", "Kafka", "TestSupport"]),
        .testTarget(name: "DashboardTests", dependencies: ["Dashboard", "DashboardHTTP", "Telemetry", "Consumer", "Config", "Checkpoints", "Marts", "Events", "Simulation", "TestSupport",
                                                          .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "CLITests", dependencies: ["UndercurrentCLI", "Streams", "Consumer", "Telemetry", "Postgres", "PostgresSink", "Config", "Archives", "Kafka", "Marts", "Events", "Simulation", "Checkpoints", "TestSupport",
                                                    .product(name: "Yams", package: "Yams")]),
    ],
    swiftLanguageModes: [.v6]
)
