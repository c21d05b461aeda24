import Consumer
import Config
import ArgumentParser
import Archives
import Charts
import Events
import Foundation
import Histogram
import Kafka
import Logging
import Marts
import Simulation
import Streams
import Synchronization
import Yams

public struct LoadTestCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Drive payment flows at a target rate with the marts consumer running, and measure it.",
        discussion: """
        Runs against the embedded broker unless --bootstrap-servers (or -X bootstrap.servers) names a cluster; \
        writes to topics prefixed with --topic-prefix, so live topics are untouched. Measures producer throughput \
        and delivery latency, end-to-end latency from send to the marts (HDR histogram), lag over time, \
        checkpoint times and errors; writes REPORT.json and REPORT.html. Exit code 3 when an --slo is violated.
        """
    )

    @Option(help: "Constant offered load, events/s.") var rate: Double?
    @Option(help: "A ramp FROM:TO:DURATION, e.g. 5000:200000:60s.") var ramp: String?
    @Option(help: "How long to offer load, e.g. 60s or 2m.") var duration = "30s"
    @Option(help: "An objective, e.g. p99<50ms, lag<5s, rate>90000, errors<1 (repeatable).") var slo: [String] = []
    @Option(help: "A YAML file with a list 'slos:' of objectives, as --slo.") var sloFile: String?
    @Option(help: "During the storm, this share of payment attempts fails (0-1).") var failureRate: Double?
    @Option(help: "When the failure storm starts, e.g. 10s.") var stormAt = "10s"
    @Option(help: "How long the failure storm lasts, e.g. 20s.") var stormFor = "20s"
    @Option(help: "The failure reason of the storm's failures.") var stormReason = "gateway_timeout"
    @Option(help: "Report files to write: PATH.json and PATH.html.") var report = "loadtest-report"
    @Option(help: "Prefix of the load test's topics.") var topicPrefix = "loadtest."
    @Option(help: "Embedded broker: partitions per topic.") var partitions = 6
    @Option(help: "Directory for the consumer's checkpoints (default: a temporary directory).") var stateDir: String?
    @Option(help: "Seconds to wait after the load for the consumer to catch up.") var drainTimeout: Double = 60
    @Option(help: "Leave messages sent in this first stretch out of the overall latency figures (group join, first fetches).") var warmup = "2s"
    @Flag(help: "Do not evaluate failure-spike alerts in the consumer.") var noAlerts = false
    @Option(help: "Alert rules (default: alerts.yaml in the config directory).") var alerts: String?
    @OptionGroup var simulation: SimulationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws { _ = try plan() }

    func objectives() throws -> [SLO] {
        var texts = slo
        if let sloFile {
            guard let data = FileManager.default.contents(atPath: sloFile) else { throw ValidationError("--slo-file: cannot read \(sloFile)") }
            let text = String(decoding: data, as: UTF8.self)
            guard let list = try? YAMLList.strings(text, key: "slos") else {
                throw ValidationError("--slo-file \(sloFile): expected a YAML mapping with a list 'slos:' of objectives like p99<50ms")
            }
            texts += list
        }
        return try texts.map(SLO.parse)
    }

    func plan() throws -> LoadTest {
        var t = LoadTest()
        guard rate == nil || ramp == nil else { throw ValidationError("choose one of --rate and --ramp") }
        if let rate {
            guard rate > 0, rate.isFinite else { throw ValidationError("--rate: expected a positive number of events per second, got \(rate)") }
            t.profile = .constant(rate)
        } else if let ramp {
            t.profile = try RateProfile.parseRamp(ramp)
        }
        t.duration = try DurationArgument.parse(duration, option: "--duration")
        guard t.duration > 0 else { throw ValidationError("--duration: expected a positive duration") }
        if let failureRate {
            guard (0...1).contains(failureRate) else { throw ValidationError("--failure-rate: expected a share from 0 to 1, got \(failureRate)") }
            guard let reason = FailureReason(rawValue: stormReason) else {
                throw ValidationError("--storm-reason: expected one of \(FailureReason.allCases.map(\.rawValue).joined(separator: ", ")); got '\(stormReason)'")
            }
            t.storm = (failureRate, try DurationArgument.parse(stormAt, option: "--storm-at"), try DurationArgument.parse(stormFor, option: "--storm-for"), reason)
        }
        guard (1...256).contains(partitions) else { throw ValidationError("--partitions: expected 1 to 256") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout: expected seconds ≥ 0") }
        // The load goes to topics of its own: without a prefix it would go into the live topics.
        guard !topicPrefix.isEmpty else { throw ValidationError("--topic-prefix: cannot be empty (the load test would write into the live topics)") }
        for name in Topics.inputs + Topics.outputs { try StartChecks.topicName(topicPrefix + name, option: "--topic-prefix") }
        t.topicPrefix = topicPrefix
        t.drainTimeout = drainTimeout
        t.warmup = try DurationArgument.parse(warmup, option: "--warmup")
        _ = try objectives()
        return t
    }

    public func run() throws {
        try StartChecks.file(report + ".json", "the load-test report")
        try StartChecks.file(report + ".html", "the load-test report")
        let logger = common.makeLogger("loadtest")
        var test = try plan()
        let objectives = try objectives()
        if !noAlerts { test.alertRules = try AlertConfig.load(file: alerts, configDir: simulation.configDir) }
        var parameters = try simulation.parameters()
        // Size the simulated business to the planned load unless --customers was given.
        if !CommandLine.arguments.contains("--customers") {
            parameters.customers = try LoadTest.customersFor(events: test.profile.total(until: test.duration), parameters: parameters)
            // (A business sized to a mistyped rate took all memory before sending anything.)
            guard parameters.customers <= SimulationOptions.maxCustomers else {
                throw ValidationError("\(test.profile) for \(compact(test.duration)) s needs about \(parameters.customers) simulated customers, more than the \(SimulationOptions.maxCustomers) a simulation takes: lower the rate or the duration, or give --customers")
            }
        }
        let stop = StopSignal()
        var broker: EmbeddedBroker? = nil
        var config: KafkaConfig
        let cluster: String
        let useEmbedded = kafka.bootstrapServers == nil && !kafka.properties.contains { $0.hasPrefix("bootstrap.servers=") }
        if useEmbedded {
            let b = try EmbeddedBroker(brokers: 1, logger: logger)
            for name in (Topics.inputs + Topics.outputs).map({ topicPrefix + $0 }) {
                try b.createTopic(name, partitions: partitions, replicationFactor: 1)
            }
            broker = b
            config = KafkaConfig()
            for p in kafka.properties { let (k, v) = try KafkaConfig.parseAssignment(p); config[k] = v }
            config["bootstrap.servers"] = b.bootstrapServers
            // A short fetch wait keeps the measured latency the pipeline's own (see `EmbeddedBroker.tuned`).
            config = EmbeddedBroker.tuned(config).0
            cluster = "embedded broker (librdkafka mock cluster) at \(b.bootstrapServers)"
        } else {
            config = try kafka.kafkaConfig()
            if EmbeddedBroker.serves(config) {
                // librdkafka's mock cluster has no CreateTopics: the request waited out its 30 s timeout. It creates
                // a topic on first use instead.
                logger.notice("embedded broker: the load-test topics are created on first use, with its default partition count")
            } else {
                let admin = try KafkaAdmin(config: config, logger: logger)
                do {
                    try admin.createTopics((Topics.inputs + Topics.outputs).map { (topicPrefix + $0, partitions, 1) })
                } catch {
                    logger.notice("could not create the load-test topics (\(error)); using them as they are")
                }
            }
            cluster = config["bootstrap.servers"] ?? "?"
        }
        let state: URL
        if let stateDir { state = URL(fileURLWithPath: stateDir) } else {
            state = FileManager.default.temporaryDirectory.appendingPathComponent("undercurrent-loadtest-\(ProcessInfo.processInfo.processIdentifier)")
        }
        defer { if stateDir == nil { try? FileManager.default.removeItem(at: state) } }
        Console.err("loadtest: \(test.profile) for \(compact(test.duration)) s, scenario \(simulation.scenario), \(parameters.customers) customers, \(cluster)")
        var result = try test.run(parameters: parameters, scenario: simulation.scenario, kafka: config, partitions: partitions,
                                  cluster: cluster, stateDirectory: state, stop: stop, logger: logger, report: { Console.progress($0) })
        _ = broker
        result.evaluate(objectives)
        Console.endProgress()
        Console.out(result.summaryTable)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try OutputFile.write(encoder.encode(result), to: report + ".json", what: "the load-test report")
        try OutputFile.write(Data(result.html.utf8), to: report + ".html", what: "the load-test report")
        Console.err("loadtest: report written to \(report).json and \(report).html")
        if stop.isStopped { throw ExitCode(130) }
        if !result.slosMet { throw ExitCode(3) }
        if result.errors > 0 && objectives.isEmpty { throw ExitCode(1) }
    }
}

/// Reads a top-level list of strings from a small YAML document.
enum YAMLList {
    static func strings(_ text: String, key: String) throws -> [String] {
        guard let root = try Yams.load(yaml: text) as? [String: Any], let list = root[key] as? [Any] else { throw CLIError("no list '\(key)'") }
        return list.map { "\($0)" }
    }
}
