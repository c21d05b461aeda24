import Checkpoints
import Consumer
import Config
import ArgumentParser
import Archives
import Dashboard
import Events
import DashboardHTTP
import Foundation
import Kafka
import Logging
import Marts
import Simulation
import Evaluation
import ServiceLifecycle
import Streams
import Synchronization

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The whole story on the embedded broker: broker, the three producers and the consumer; ends with the executive KPIs.",
        discussion: """
        Starts the embedded broker, runs billing, payments and engagement producers in backfill mode next to the \
        marts consumer, waits until the consumer has taken in every delivered event, and proves by counting that \
        nothing was lost to the embedded broker's 5 MiB-per-partition retention: a producer that runs more than \
        5,000 messages a partition (about 1.6 MB) ahead of the consumer waits for it, so the demo works at any size. \
        It ends with the executive KPIs, what to fix first, what the failure-spike alerts can catch at this volume, \
        the scenario's injected incidents against the alerts raised (try --scenario payment-incident --customers \
        30000 --months 18), and the counts.
        """
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Partitions per topic on the embedded broker.") var partitions = 12
    @Option(help: "State directory for the consumer (emptied first).") var stateDir = ".undercurrent/demo-state"
    @Option(help: "Also export the marts as CSV into this directory.") var export: String?
    @Option(help: "Also write the one-file HTML report (every dashboard page) here.") var report: String?
    @Option(help: "Afterwards, serve the dashboard on HOST:PORT (e.g. 127.0.0.1:8080) until Ctrl-C.") var serve: String?
    @OptionGroup var common: CommonOptions

    /// How many messages a partition a producer may run ahead of the consumer: at the 321 bytes an archive line takes
    /// for these events (value, key and timestamp; a message's headers add a few dozen), about 1.6 MB of the embedded
    /// broker's 5 MiB a partition, leaving room for keys that spread unevenly.
    static let aheadPerPartition = 5_000

    func validate() throws {
        guard (1...64).contains(partitions) else { throw ValidationError("--partitions: expected 1 to 64, got \(partitions)") }
        if let serve { _ = try ListenAddress.parse(serve, option: "--serve") }
    }

    func run() throws {
        if let export { try StartChecks.directory(export, "the export directory") }
        try StartChecks.file(report, "the report")
        // Before the demo's minutes of work, not after them (and again when the dashboard binds).
        if let serve { _ = try ListenAddress.available(serve, option: "--serve") }
        var logger = common.makeLogger("demo")
        if common.logLevel == "info" { logger.logLevel = .warning }
        let stop = StopSignal()
        let broker = try EmbeddedBrokerRunner(partitions: partitions, addressFile: nil).start(logger: logger)
        Console.err("embedded broker on \(broker.bootstrapServers), \(partitions) partitions per topic")
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        let stateURL = URL(fileURLWithPath: stateDir)
        try? FileManager.default.removeItem(at: stateURL)

        // The consumer runs beside the producers and stops once it has taken in every message they delivered (or,
        // should that count never be reached, once the topics have been quiet for a while); Ctrl-C stops it too.
        let consumerStop = StopSignal(handleSignals: false)
        stop.onStop { consumerStop.stop() }
        let takeAll = TakeAll(consumerStop)
        var options = MartsConsumer.Options(stateDirectory: stateURL)
        options.exitWhenIdle = .seconds(4)
        options.alertRules = try AlertConfig.load(file: nil, configDir: simulation.configDir)
        options.probe = takeAll
        let consumer = MartsConsumer(options: options, logger: logger)
        let consumerError = Mutex<String?>(nil)
        // The consumer and the three producers run as services of one group, each loop on a thread of its own. A
        // producer finishing leaves the others running; when the last one has finished, the consumer is told how
        // many messages to expect and stops once it has applied them. The group returns when all four have
        // returned. Ctrl-C stops the four loops at once, each in its own way (a producer waits for its messages in
        // flight, the consumer writes its checkpoint), and they may return in any order.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ThreadService("marts-consumer", stop: consumerStop) {
                do { try consumer.run(kafka: kafka, stop: consumerStop) } catch { consumerError.withLock { $0 = "\(error)" } }
                takeAll.consumerEnded()
            }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "marts-consumer")
        ]
        stop.onStop { takeAll.consumerEnded() }

        let started = ContinuousClock.now
        let totals = Mutex<(sent: Int, delivered: Int, failed: Int, finished: Int)>((0, 0, 0, 0))
        let start = try simulation.startTime()
        let parameters = try simulation.parameters()
        // At most `aheadPerPartition` messages a partition unread (keys spread evenly over the partitions).
        let allowed = partitions * Self.aheadPerPartition
        for topic in InputTopic.allCases {
            let producer = try KafkaProducer(config: kafka, logger: logger)
            let name = "\(topic.rawValue)-producer"
            services.append(.init(service: ThreadService(name, stop: stop) {
                var run = ProducerRun(topics: [topic], pacing: .backfill, label: name)
                run.holdBack = { sent in takeAll.wait(for: topic, toReach: sent - allowed) }
                var s = (sent: 0, delivered: 0, failed: 0)
                do {
                    let summary = try run.run(world: try World(parameters), simulationStart: start, producer: producer, stop: stop,
                                              report: { line in if topic == .engagement { Console.progress(line) } }, notice: Console.notice)
                    s = (summary.sent, summary.delivered, summary.failed)
                } catch {
                    Console.err("\(name): \(error)")
                    s.failed = 1
                }
                let all = totals.withLock { t in
                    t = (t.sent + s.sent, t.delivered + s.delivered, t.failed + s.failed, t.finished + 1)
                    return t
                }
                guard all.finished == InputTopic.allCases.count else { return }
                Console.notice("producers: \(all.delivered) of \(all.sent) events delivered in \(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s"
                            + (stop.isStopped ? "" : "; waiting for the consumer to catch up"))
                takeAll.expect(all.delivered)
            }, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: name))
        }
        try ServiceRunner.run(services, stop: stop, logger: logger, shutdownOnStop: false)
        let produced = totals.withLock { $0 }
        services.removeAll()  // the producers' clients, before the broker goes
        if stop.isStopped {
            withExtendedLifetime(broker) {}
            Console.err("demo: stopped; what the consumer had taken in is checkpointed in \(stateDir)")
            throw ExitCode(130)
        }
        if let e = consumerError.withLock({ $0 }) { throw CLIError("consumer failed: \(e)") }

        // Prove by counting that the consumer took in everything: no message was deleted by the broker's retention
        // before the consumer read it (its history says how many it missed). The broker may have deleted messages
        // since, after they were read: a demo larger than it keeps.
        // Its own scope: every client is gone before the broker stops, so none logs a refused connection.
        let deleted = try {
            let admin = try KafkaAdmin(config: kafka, logger: logger)
            var deleted = 0
            for topic in Topics.inputs {
                for p in 0..<partitions { deleted += Int(try admin.watermarks(TopicPartition(topic, Int32(p))).low) }
            }
            return deleted
        }()
        let state = try StateDirectory(stateDir)
        let (snapshot, offsets) = try state.load()
        let consumed = offsets.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + Int($1) } }
        let history = state.history()
        let missed = history.reduce(0) { $0 + Int($1.missedMessages) }
        Console.out("")
        Console.out(ExecutiveKPIs(snapshot).text)
        Console.out("")
        // What to fix first: the narrative's recommendations, or why it cannot conclude.
        let alerts = AlertLog.read(stateDirectory: stateURL)
        let data = DashboardData(snapshot: snapshot, alerts: alerts, historyGaps: HistoryStart.summaries(history))
        let narrative = Narrative(data)
        if let insufficient = narrative.insufficient {
            Console.out("what to fix first: not known yet. \(insufficient)")
        } else if narrative.recommendations.isEmpty {
            Console.out("what to fix first: nothing stands out (no revenue lost to failed payments, no customer at high risk)")
        } else {
            Console.out("what to fix first:")
            for (i, r) in narrative.recommendations.enumerated() { Console.out("  \(i + 1). \(r)") }
        }
        Console.out("")
        Console.out("alerts: \(consumer.summary.alertsFiring) fired, \(consumer.summary.alertsResolved) resolved")
        Console.out("at this volume \(DetectionReach.sentence(consumer.detectionReach(outageRate: ConsumerMetrics.referenceOutageRate))) (`undercurrent evaluate-alerts` measures detection at other sizes)")
        // The simulation's ground truth: what the alerts caught of the incidents the scenario injected, and what they
        // raised about none.
        for line in IncidentCoverage.demoLines(windows: try World(parameters).incidents, alerts: alerts, start: start, end: try simulation.endTime()) {
            Console.out(line)
        }
        Console.out("counted: \(produced.sent) events simulated, \(produced.delivered) delivered, \(consumed) consumed (offsets), \(snapshot.accepted) accepted, \(snapshot.duplicates) duplicates, \(snapshot.rejected) rejected; \(missed) lost to broker retention"
                    + (deleted > 0 ? " (it deleted \(deleted) messages after the consumer had read them)" : ""))
        if let export {
            try MartExporter.write(snapshot, offsets: offsets, to: URL(fileURLWithPath: export), json: false)
            Console.out("marts exported to \(export)")
        }
        if let report {
            let reach = consumer.detectionReach(outageRate: ConsumerMetrics.referenceOutageRate)
            let page = PageRenderer(data: data, alerting: AlertCoverage(reach: reach, lateAttempts: consumer.lateAlertAttempts)).report()
            try OutputFile.write(Data(page.utf8), to: report, what: "the report")
            Console.out("report written to \(report)")
        }
        withExtendedLifetime(broker) {}
        guard produced.failed == 0, produced.delivered == produced.sent, snapshot.accepted == produced.delivered,
              consumed == produced.delivered, missed == 0 else {
            Console.err("demo: error: the counts above do not agree")
            throw ExitCode(1)
        }
        if let serve {
            let address = try ListenAddress.parse(serve, option: "--serve")
            let logger = common.makeLogger("dashboard")
            let server = DashboardServer(source: StateDirectorySource(directory: stateURL), host: address.host, port: address.port)
            try ServiceRunner.run(server.services(logger: logger) { port in Console.out("dashboard: \(address.url(port: port))/ (Ctrl-C stops)") },
                                  stop: stop, logger: logger)
        }
    }
}

/// Stops the demo's consumer once it has taken in as many messages as the producers delivered (known when they are
/// done), rather than after its idle wait; and holds a producer back while the consumer trails it by too much.
final class TakeAll: ConsumerProbe {
    private let stop: StopSignal
    private let taken = Atomic<Int>(0)
    private let expected = Atomic<Int>(.max)
    /// Per input topic (`ordinal`): messages applied, and the count at which a waiting producer is to be woken
    /// (.max: none waits). The consumer's threads touch only atomics unless a producer waits for that count.
    private final class Count: Sendable {
        let taken = Atomic<Int>(0)
        let wakeAt = Atomic<Int>(.max)
    }
    private let counts = InputTopic.allCases.map { _ in Count() }
    private let ended = Atomic<Bool>(false)
    private let condition = NSCondition()

    init(_ stop: StopSignal) { self.stop = stop }

    /// Returns once the consumer has applied `count` messages of `topic`, or has stopped.
    func wait(for topic: InputTopic, toReach count: Int) {
        let c = counts[topic.ordinal]
        condition.lock()
        defer { condition.unlock() }
        c.wakeAt.store(count, ordering: .sequentiallyConsistent)
        while c.taken.load(ordering: .sequentiallyConsistent) < count && !ended.load(ordering: .sequentiallyConsistent) { condition.wait() }
        c.wakeAt.store(.max, ordering: .sequentiallyConsistent)
    }

    /// The consumer stopped (or the demo is stopping): no producer waits for it any more.
    func consumerEnded() {
        ended.store(true, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func expect(_ count: Int) {
        expected.store(count, ordering: .sequentiallyConsistent)
        if taken.load(ordering: .sequentiallyConsistent) >= count { stop.stop() }
    }

    func applied(_ message: KafkaMessage) {
        if let c = InputTopic(rawValue: message.topic).map({ counts[$0.ordinal] }),
           c.taken.add(1, ordering: .sequentiallyConsistent).newValue >= c.wakeAt.load(ordering: .sequentiallyConsistent) {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        if taken.add(1, ordering: .sequentiallyConsistent).newValue >= expected.load(ordering: .sequentiallyConsistent) { stop.stop() }
    }

    func checkpointed(seconds: Double) {}
}
