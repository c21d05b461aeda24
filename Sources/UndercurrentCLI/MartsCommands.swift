import Consumer
import Config
import ArgumentParser
import Archives
import Checkpoints
import Dashboard
import Events
import DashboardHTTP
import Foundation
import Postgres
import PostgresSink
import Kafka
import Marts
import ServiceLifecycle
import Telemetry

public struct MartsConsumerCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "marts-consumer",
        abstract: "Keep every mart up to date from the input topics, checkpointing state with its offsets.",
        discussion: """
        State is kept per input partition number and checkpointed to --state-dir with the next offset of each \
        input topic-partition; on assignment each partition resumes from its checkpoint. Several processes in \
        one group sharing --state-dir split the partitions. Ctrl-C / SIGTERM take a final checkpoint.
        The marts are defined in docs/marts.md, the events they are built from in docs/events.md, and how the \
        consumer keeps them exact across crashes in docs/architecture.md.

        \(ExitStatus.help)
        """
    )

    @Option(help: "Directory for checkpoints.") var stateDir: String
    @Option(help: "Consumer group (default: undercurrent-marts, after the --topic-prefix).") var group: String?
    @Option(help: "Read the input topics PREFIX+billing, PREFIX+payments and PREFIX+engagement, and write to PREFIX+customer-risk and, unless their options name others, PREFIX+alerts and PREFIX+events-dlq: for a history replayed beside the live topics (undercurrent replay --topic-map billing=replay.billing,…), whose alerts must not reach the live alerts topic.") var topicPrefix = ""
    @Option(help: "Checkpoint after this many events of a partition.") var checkpointEvents = 50_000
    @Option(help: "Checkpoint at least this often, in milliseconds.") var checkpointMs = 2000
    @Option(help: "Customers kept unpacked in memory per partition; the rest are packed (about 250 bytes each) and unpacked when their next event comes (default: 8192).") var hotCustomers: Int?
    @Option(help: "Threads applying each polled batch, partitions split between them (default: up to 2, one per core).") var threads: Int?
    @Option(help: "Start over: 'earliest' discards checkpoints and rebuilds from the earliest offsets.") var reset: String?
    @Flag(help: "Discard (possibly corrupt) checkpoints and rebuild from the earliest offsets; with --postgres, empty its tables and write them again.") var rebuild = false
    @Option(help: "Feed this archive (written by `undercurrent simulate` or `record`, plain or .gz; '-' for standard input, or a pipe) through the engine instead of Kafka.") var fromArchive: String?
    @Option(help: "With --from-archive: partition count to assign records to (as the producers' murmur2 would; default 6).") var partitions: Int?
    @Flag(help: "With --from-archive: accept a gzip archive that is cut off, using its complete lines (otherwise an error, exit 1, after they are applied).") var allowTruncated = false
    @Option(help: "Leave out events after this event time (RFC 3339, e.g. 2025-06-30T23:59:59Z or 2025-06-30T23:59:59.999+02:00), for as-of analysis. Read and counted, never applied, in whatever order they come; the same command without --until then applies them (each partition reads again from its first record after the time: what it applied before counts as duplicates, not twice). From Kafka, the run stops by itself once every partition has had an event after the time or, when that time has passed, is at its end.") var until: String?
    @Option(help: "Start partitions that have no checkpoint at this time (RFC 3339 or YYYY-MM-DD): offsets are looked up by timestamp where the cluster can, else earlier messages are scanned and skipped.") var fromTime: String?
    @Option(help: "Exit after this many seconds without messages (batch runs). Such a run fails (exit 1) once no broker has answered for this long, and at least 30 s: one that never reached the cluster, or one whose cluster went away (its state checkpointed as far as it got).") var exitWhenIdle: Double?
    @Option(help: "Dead-letter topic (default: events-dlq, after the --topic-prefix).") var dlqTopic: String?
    @Option(help: "Write metrics in Prometheus text format to this file at each progress report (node_exporter textfile collector).") var metricsFile: String?
    @Option(help: "Seconds between progress reports.") var reportSeconds: Double = 5
    @Option(help: "Alert rules (default: alerts.yaml in the config directory).") var alerts: String?
    @Flag(help: "Do not evaluate failure-spike alerts.") var noAlerts = false
    @Option(help: "Directory holding alerts.yaml.") var configDir: String?
    @Option(help: "Topic for alerts (default: alerts, after the --topic-prefix).") var alertsTopic: String?
    @Option(help: "POST each alert as JSON to this URL (never stalls consumption; 3 tries, 2 s timeout each).") var alertWebhook: String?
    @Option(help: "Serve the dashboard and API on HOST:PORT while consuming (e.g. 127.0.0.1:8080).") var serve: String?
    @Option(help: "With --serve: require this bearer token; default: $UNDERCURRENT_DASHBOARD_TOKEN.") var token: String?
    @Option(help: "Mirror the marts into PostgreSQL after each checkpoint, exactly once: a libpq URI such as postgresql://undercurrent@127.0.0.1:5432/analytics (password from PGPASSWORD or ~/.pgpass). Tables in schema 'undercurrent' (docs/architecture.md).") var postgres: String?
    @Option(help: "With --postgres: seconds a write may wait without the server answering before the connection is given up as broken and made again (a backend that stopped answering while its host still acknowledges; default 60).") var postgresTimeout: Double?
    @OptionGroup var metrics: MetricsOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws {
        if let serve { _ = try ListenAddress.parse(serve, option: "--serve") }
        _ = try dashboardToken(token)
        if let reset, reset != "earliest" { throw ValidationError("--reset: expected 'earliest', got '\(reset)'") }
        guard checkpointEvents > 0 else { throw ValidationError("--checkpoint-events: expected a positive number") }
        guard checkpointMs > 0 else { throw ValidationError("--checkpoint-ms: expected a positive number") }
        if let partitions, !(1...1024).contains(partitions) { throw ValidationError("--partitions: expected 1 to 1024") }
        // Options of an archive replay, not of consuming from Kafka (where the cluster has the partitions): refused
        // rather than quietly ignored.
        if fromArchive == nil {
            if partitions != nil { throw ValidationError("--partitions: only with --from-archive (from Kafka, the topics' own partitions are used)") }
            if allowTruncated { throw ValidationError("--allow-truncated: only with --from-archive") }
        }
        try TimeArgument.checkRange(from: try fromTime.map { try TimeArgument.parse($0, option: "--from-time") }, fromOption: "--from-time",
                                    until: try until.map { try TimeArgument.parseTime($0, option: "--until") }, untilOption: "--until")
        if let exitWhenIdle, !(exitWhenIdle > 0) { throw ValidationError("--exit-when-idle: expected a positive number of seconds") }
        if let hotCustomers, !(1...10_000_000).contains(hotCustomers) { throw ValidationError("--hot-customers: expected a number from 1 to 10000000") }
        if let threads, !(1...64).contains(threads) { throw ValidationError("--threads: expected a number from 1 to 64") }
        guard reportSeconds > 0 else { throw ValidationError("--report-seconds: expected a positive number of seconds") }
        for name in Topics.inputs + Topics.outputs { try StartChecks.topicName(topicPrefix + name, option: "--topic-prefix") }
        let inputs = Topics.inputs(prefixedBy: topicPrefix).values
        for (topic, option) in [(deadLetterTopic, "--dlq-topic"), (alertsTopicName, "--alerts-topic")] {
            try StartChecks.topicName(topic, option: option)
            // Its own outputs would come back to it as input: dead letters of dead letters, for ever.
            if inputs.contains(topic) { throw ValidationError("\(option): \(topic) is an input topic of the consumer") }
        }
        if let postgres {
            do { try PostgresURI.validate(postgres) } catch { throw ValidationError("--postgres: \(error.message)") }
        }
        if let postgresTimeout {
            guard postgres != nil else { throw ValidationError("--postgres-timeout: only with --postgres") }
            guard postgresTimeout >= 1 && postgresTimeout <= 86_400 else {
                throw ValidationError("--postgres-timeout: expected 1 to 86400 seconds")
            }
        }
    }

    /// The consumer's topics and group: the contract's names, or with `--topic-prefix` those of a history replayed
    /// beside them; outputs named by their own options are taken as given.
    func applyTopics(to options: inout MartsConsumer.Options) {
        options.topics = Topics.inputs(prefixedBy: topicPrefix)
        options.deadLetterTopic = deadLetterTopic
        options.alertsTopic = alertsTopicName
        options.riskTopic = topicPrefix + Topics.customerRisk
        options.group = group ?? topicPrefix + ConsumerOptions.defaultGroup
    }

    private var deadLetterTopic: String { dlqTopic ?? topicPrefix + Topics.deadLetter }
    private var alertsTopicName: String { alertsTopic ?? topicPrefix + Topics.alerts }

    /// The PostgreSQL sink's options from the flags and the consumer's.
    func sinkOptions(_ uri: String, consumer options: MartsConsumer.Options) -> PostgresSink.Options {
        var o = PostgresSink.Options(uri: uri)
        o.rebuild = options.rebuild
        if let postgresTimeout { o.responseTimeout = .milliseconds(Int64(postgresTimeout * 1000)) }
        o.inputTopics = Set(options.topics.values)
        return o
    }

    public func run() throws {
        try StartChecks.directory(stateDir, "the state directory")
        try StartChecks.file(metricsFile, "the metrics file")
        if let fromArchive { try StartChecks.archive(fromArchive) }
        // Before PostgreSQL or Kafka is touched (and again when the servers bind).
        let metricsAddress = try metrics.metricsListen.map { try ListenAddress.available($0, option: "--metrics-listen") }
        let serveAddress = try serve.map { try ListenAddress.available($0, option: "--serve") }
        if let serveAddress, let metricsAddress {
            try ListenAddress.checkApart((serveAddress, "--serve"), (metricsAddress, "--metrics-listen"),
                                         advice: "give each its own port, or leave out --metrics-listen (the dashboard of --serve serves /metrics too)")
        }
        let logger = common.makeLogger("marts-consumer")
        var options = MartsConsumer.Options(stateDirectory: URL(fileURLWithPath: stateDir))
        applyTopics(to: &options)
        options.checkpointEvents = checkpointEvents
        options.checkpointInterval = .milliseconds(checkpointMs)
        if let threads { options.threads = threads }
        options.hotCustomers = hotCustomers
        options.rebuild = rebuild || reset == "earliest"
        options.until = try until.map { try TimeArgument.parseTime($0, option: "--until") }
        options.startTime = try fromTime.map { try TimeArgument.parse($0, option: "--from-time") }
        options.exitWhenIdle = exitWhenIdle.map { .milliseconds(Int64($0 * 1000)) }
        options.metricsFile = metricsFile.map { URL(fileURLWithPath: $0) }
        options.allowTruncatedArchive = allowTruncated
        options.metrics = MetricsRegistry()
        options.reportInterval = .milliseconds(Int64(reportSeconds * 1000))
        if !noAlerts { options.alertRules = try AlertConfig.load(file: alerts, configDir: configDir) }
        if let alertWebhook {
            guard let url = URL(string: alertWebhook), url.scheme == "http" || url.scheme == "https" else {
                throw ValidationError("--alert-webhook: expected an http(s) URL, got '\(alertWebhook)'")
            }
            options.alertWebhook = AlertWebhook(url: url)
        }
        if let postgres {
            // Before any work: wrong credentials or a missing database end here; a server that is away does not.
            let o = sinkOptions(postgres, consumer: options)
            do {
                options.sinks.append(try PostgresSink(options: o, logger: logger))
            } catch {
                Console.err("marts-consumer: error: --postgres \(PostgresURI.redacted(postgres)): \(error.message)")
                throw ExitCode(2)
            }
        }
        // SIGINT / SIGTERM set `stop`: the group shuts the consumer down first (a final checkpoint), then the
        // dashboard; a second signal exits at once.
        let stop = StopSignal()
        let consumer = MartsConsumer(options: options, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // Started first, stopped last: the webhook drains what the consumer's final checkpoint raised.
        if let hook = options.alertWebhook { services.append(.init(service: hook, serviceName: "alert-webhook")) }
        services += try metrics.services(options.metrics, logger: logger)
        services += try serve.map { try dashboardServices($0, consumer: consumer, options: options) } ?? []
        let (archive, partitionCount, kafkaConfig) = (fromArchive, partitions ?? 6, fromArchive == nil ? try kafka.kafkaConfig() : nil)
        let run = ThreadService("marts-consumer", stop: stop) {
            if let archive {
                try consumer.run(archive: archive, partitionCount: partitionCount, stop: stop)
            } else if let kafkaConfig {
                try consumer.run(kafka: kafkaConfig, stop: stop)
            }
        }
        // When the consumer ends by itself (--exit-when-idle, an archive's end), so does the dashboard.
        services.append(.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "marts-consumer"))
        do {
            try ServiceRunner.run(services, stop: stop, logger: logger)
        } catch let e as CheckpointError where e.kind == .anotherConsumers {
            // Not --rebuild's to mend: that would discard the other consumer's state.
            Console.err("marts-consumer: error: \(e). Give this consumer a state directory of its own (--state-dir).")
            throw ExitCode(2)
        } catch let e as CheckpointError {
            Console.err("marts-consumer: error: \(e). Start with --rebuild to rebuild it from the earliest offsets.")
            throw ExitCode(2)
        } catch let e where e is ClusterLostError || (e as? ArchiveError)?.truncated == true || consumer.sinkFailure != nil {
            // The run got somewhere first: what it applied, then why it stopped.
            let s = consumer.summary
            Console.err("marts-consumer: accepted \(s.accepted), duplicates \(s.duplicates), rejected \(s.rejected), \(s.checkpoints) checkpoints")
            Console.err("marts-consumer: error: \(e)")
            throw ExitCode(1)
        }
        if let hook = options.alertWebhook {
            hook.close()
            let c = hook.counters
            Console.err("alert webhook: \(c.delivered) delivered, \(c.failed) failed after retries, \(c.dropped) dropped")
        }
        let s = consumer.summary
        let ending: String
        if let gaveUp = consumer.checkpointGaveUp {
            ending = " (stopped by \(stop.receivedSignal ?? "a signal") while checkpoints failed: the last one was not written)"
            Console.err("marts-consumer: accepted \(s.accepted), duplicates \(s.duplicates), rejected \(s.rejected), \(s.checkpoints) checkpoints\(ending)")
            Console.err("marts-consumer: error: checkpoint of \(gaveUp); the next start resumes from the last checkpoint written")
            throw ExitCode(1)
        }
        ending = stop.isStopped ? " (stopped by \(stop.receivedSignal ?? "a signal"), final checkpoint taken)" : ""
        Console.err("marts-consumer: accepted \(s.accepted), duplicates \(s.duplicates), rejected \(s.rejected), risk changes \(s.riskChanges), alerts fired \(s.alertsFiring) / resolved \(s.alertsResolved), \(s.checkpoints) checkpoints in \(String(format: "%.1f", s.seconds)) s\(fromTime == nil ? "" : ", \(s.skippedBeforeStart) before --from-time left out")\(until == nil ? "" : ", \(s.skippedAfterUntil) after --until left out")\(ending)")
        // A mirror of the marts (PostgreSQL) that the run left behind its checkpoints: said, never silent. A run
        // that ended by itself (an archive's end, --exit-when-idle) did not do what it was asked, so it fails;
        // a service stopped by a signal catches the tables up at its next start.
        let behind = consumer.metrics.sinks.filter { $0.checkpointsBehind > 0 }
        for sink in behind {
            let why = sink.connected ? "its writes failed" : "its server was unreachable"
            Console.err("marts-consumer: \(stop.isStopped ? "warning" : "error"): the \(sink.name) tables are \(sink.checkpointsBehind) checkpoints behind "
                        + "the state (\(why)); they catch up at the next start of a consumer with the same --state-dir and --\(sink.name)")
        }
        if !behind.isEmpty && !stop.isStopped { throw ExitCode(1) }
        // An archive replay is a job with an end, not a service: stopped before it, it did not finish (as `replay`
        // and `simulate`). Its final checkpoint holds what it applied, and the same command resumes there.
        if stop.isStopped && fromArchive != nil { throw ExitCode(130) }
    }
}

extension MartsConsumerCommand {
    /// The dashboard served from the consumer's own state directory and live metrics.
    func dashboardServices(_ listen: String, consumer: MartsConsumer, options: MartsConsumer.Options) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let address = try ListenAddress.available(listen, option: "--serve")
        try FileManager.default.createDirectory(at: options.stateDirectory, withIntermediateDirectories: true)
        let sinks: @Sendable () -> [DashboardAPI.SinkHealth] = {
            consumer.metrics.sinks.map { DashboardAPI.SinkHealth(name: $0.name, connected: $0.connected, checkpointsBehind: $0.checkpointsBehind,
                                                                 secondsBehind: $0.secondsBehind) }
        }
        let readWaiting: @Sendable () -> Double? = { consumer.metrics.clusterWaitingSeconds }
        let waiting = fromArchive == nil ? readWaiting : nil
        let alerting: @Sendable () -> AlertCoverage = {
            let m = consumer.metrics
            return AlertCoverage(reach: m.detectionReach, lateAttempts: m.lateAlertAttempts)
        }
        let source = StateDirectorySource(directory: options.stateDirectory, metrics: options.metrics, liveSinks: sinks, liveKafkaWaiting: waiting,
                                          liveAlerting: options.alertRules == nil ? nil : alerting)
        let server = DashboardServer(source: source, host: address.host, port: address.port, token: try dashboardToken(token))
        return server.services(logger: common.makeLogger("dashboard")) { port in Console.err("dashboard: \(address.url(port: port))/") }
    }
}

struct MartsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "marts", abstract: "Work with the marts kept in a state directory.",
                                                    subcommands: [ExportCommand.self])

    struct ExportCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "export",
            abstract: "Write every mart (merged over all partitions) as CSV plus manifest.json, or as JSON.")
        @Option(help: "The consumer's state directory.") var stateDir: String
        @Option(help: "Output directory.") var out: String
        @Option(help: "csv or json.") var format = "csv"
        @OptionGroup var common: CommonOptions
        func validate() throws {
            guard format == "csv" || format == "json" else { throw ValidationError("--format: expected csv or json, got '\(format)'") }
        }
        func run() throws {
            try StartChecks.directory(out, "the output directory")
            let state = try StartChecks.stateDirectory(stateDir)
            let (snapshot, offsets) = try state.load()
            try MartExporter.write(snapshot, offsets: offsets, history: state.history(), to: URL(fileURLWithPath: out), json: format == "json")
            Console.err("exported \(MartSnapshot.martNames.count) marts as of \(snapshot.asOf?.description ?? "-") to \(out)")
        }
    }
}
