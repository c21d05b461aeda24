import Consumer
import ArgumentParser
import Events
import Foundation
import Kafka
import Logging
import Simulation
import Streams
import Telemetry

/// Options of the three producer executables.
public struct ProducerOptions: ParsableArguments {
    @OptionGroup public var simulation: SimulationOptions
    @OptionGroup public var kafka: KafkaOptions
    @Flag(help: "Emit as fast as possible, with event times from the simulated history (the default).") public var backfill = false
    @Flag(help: "Pace by event time: simulated time runs --speed times wall-clock time.") public var realtime = false
    @Option(help: "With --realtime: simulated seconds per wall-clock second (1 is live; the default).") public var speed: Double?
    @Option(help: "At most this many events per second.") public var rate: Double?
    @Option(help: "Topic name to produce to (default: the contract's name).") public var topic: String?
    @OptionGroup public var metrics: MetricsOptions
    @OptionGroup public var common: CommonOptions

    public init() {}

    public func validate() throws {
        let modes = [backfill, realtime, rate != nil].filter { $0 }.count
        guard modes <= 1 else { throw ValidationError("choose one of --backfill, --realtime and --rate") }
        if let speed {
            guard speed > 0, speed.isFinite else { throw ValidationError("--speed: expected a positive number, got \(speed)") }
            // Backfill and --rate pace otherwise: the speed would be quietly ignored.
            guard realtime else { throw ValidationError("--speed: only with --realtime") }
        }
        if let rate, !(rate > 0) { throw ValidationError("--rate: expected a positive number of events per second, got \(rate)") }
        if let topic { try StartChecks.topicName(topic, option: "--topic") }
    }

    public var pacing: Pacing {
        if realtime { return .realtime(speed: speed ?? 1) }
        if let rate { return .rate(rate) }
        return .backfill
    }
}

/// The shared body of `billing-producer`, `payments-producer` and `engagement-producer`.
public protocol TopicProducerCommand: ParsableCommand {
    static var inputTopic: InputTopic { get }
    var options: ProducerOptions { get }
}

extension TopicProducerCommand {
    public func run() throws {
        let label = "\(Self.inputTopic.rawValue)-producer"
        let logger = options.common.makeLogger(label)
        let stop = StopSignal()
        let world = try options.simulation.world()
        let config = try options.kafka.kafkaConfig()
        let telemetry = ProducerTelemetry(registry: MetricsRegistry())
        // Before the client starts: an address nothing can listen on stops the producer with one line.
        let endpoint = try options.metrics.services(telemetry.registry, logger: logger)
        let producer = try KafkaProducer(config: config, logger: logger, onLatency: telemetry.onLatency)
        telemetry.observe(producer)
        var names: [InputTopic: String] = [:]
        if let t = options.topic { names[Self.inputTopic] = t }
        let run = ProducerRun(topics: [Self.inputTopic], topicNames: names, pacing: options.pacing, label: label)
        let start = try options.simulation.startTime()
        // The blocking send loop runs as a service on a thread of its own; SIGINT / SIGTERM set `stop`, and the
        // loop flushes what it sent before it returns.
        let summary = try ServiceRunner.runBlocking(label, stop: stop, logger: logger, with: endpoint) {
            try run.run(world: world, simulationStart: start, producer: producer, stop: stop, report: Console.progress, notice: Console.notice)
        }
        Console.notice("\(label): sent \(summary.sent), delivered \(summary.delivered), failed \(summary.failed) in \(String(format: "%.1f", summary.seconds)) s\(summary.interrupted ? " (interrupted, flushed)" : "")")
        if summary.failed > 0 || summary.delivered != summary.sent {
            Console.err("\(label): error: \(summary.sent - summary.delivered) events not delivered; \(summary.undelivered)")
            throw ExitCode(1)
        }
        if summary.interrupted { throw ExitCode(130) }
    }
}

public struct BillingProducer: TopicProducerCommand {
    public static let configuration = CommandConfiguration(commandName: "billing-producer",
        abstract: "Simulate the business and produce its billing events (customers, subscriptions, invoices).",
        discussion: ExitStatus.help)
    public static let inputTopic = InputTopic.billing
    @OptionGroup public var options: ProducerOptions
    public init() {}
}

public struct PaymentsProducer: TopicProducerCommand {
    public static let configuration = CommandConfiguration(commandName: "payments-producer",
        abstract: "Simulate the business and produce its payment events (attempts, retries, card updates).",
        discussion: ExitStatus.help)
    public static let inputTopic = InputTopic.payments
    @OptionGroup public var options: ProducerOptions
    public init() {}
}

public struct EngagementProducer: TopicProducerCommand {
    public static let configuration = CommandConfiguration(commandName: "engagement-producer",
        abstract: "Simulate the business and produce its product-engagement events (feature use, cancel intent).",
        discussion: ExitStatus.help)
    public static let inputTopic = InputTopic.engagement
    @OptionGroup public var options: ProducerOptions
    public init() {}
}
