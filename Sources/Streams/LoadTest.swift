import Consumer
import Config
import Charts
import Events
import Foundation
import Histogram
import Kafka
import Logging
import Marts
import Simulation
import Synchronization

/// Drives simulated payment flows into Kafka at a target rate with the marts consumer running in the same
/// process, and measures throughput, delivery and end-to-end latency, lag and checkpoint times.
public struct LoadTest {
    static let sentHeader = "sent-ns"

    public var profile: RateProfile = .constant(10_000)
    public var duration = 30.0
    /// (failure rate, start second, length in seconds, reason)
    public var storm: (rate: Double, at: Double, length: Double, reason: FailureReason)?
    public var topicPrefix = "loadtest."
    public var drainTimeout = 60.0
    /// Seconds at the start whose messages are left out of the overall latency figures (group join,
    /// first fetches); they still appear in the per-second samples.
    public var warmup = 2.0
    public var alertRules: AlertRules?
    public var checkpointEvents = 50_000
    public var checkpointInterval = 2.0

    public init() {}

    /// The end offset of every partition of `topics` the cluster has now (none for a topic it does not have yet).
    static func endOffsets(of topics: [String], kafka: KafkaConfig, logger: Logger) -> [TopicPartition: Int64] {
        guard let admin = try? KafkaAdmin(config: kafka, logger: logger), let found = try? admin.partitions(of: topics) else { return [:] }
        var ends: [TopicPartition: Int64] = [:]
        for (topic, partitions) in found {
            for p in partitions {
                let tp = TopicPartition(topic, p)
                if let w = try? admin.watermarks(tp), w.high > 0 { ends[tp] = w.high }
            }
        }
        if !ends.isEmpty { logger.notice("the load-test topics hold \(ends.values.reduce(0, +)) messages of earlier runs: reading from their ends") }
        return ends
    }

    public func run(parameters: SimulationParameters, scenario: String, kafka: KafkaConfig, partitions: Int, cluster: String,
                    stateDirectory: URL, stop: StopSignal, logger: Logger,
                    report: @escaping @Sendable (String) -> Void) throws -> LoadReport {
        var parameters = parameters
        let stormControl = storm.map { StormControl(reason: $0.reason) }
        parameters.storm = stormControl
        let world: World
        do { world = try World(parameters) } catch { throw StreamSetupError(error.description) }

        // The consumer, reading the load test's own topics (run as a service below).
        let probe = LoadProbe()
        var options = MartsConsumer.Options(stateDirectory: stateDirectory)
        options.group = "undercurrent-loadtest-\(ProcessInfo.processInfo.processIdentifier)-\(Int(Date().timeIntervalSince1970))"
        options.topics = Topics.inputs(prefixedBy: topicPrefix)
        options.deadLetterTopic = topicPrefix + Topics.deadLetter
        options.alertsTopic = topicPrefix + Topics.alerts
        options.riskTopic = topicPrefix + Topics.customerRisk
        options.alertRules = alertRules
        options.probe = probe
        options.rebuild = true
        options.checkpointEvents = checkpointEvents
        options.checkpointInterval = .milliseconds(Int64(checkpointInterval * 1000))
        options.reportInterval = .seconds(1)
        // Topics kept from an earlier run on the same cluster are read from where they end now: their old messages
        // were counted as applied (as duplicates, the same simulated events) and made the lag negative.
        options.startOffsets = Self.endOffsets(of: Array(options.topics.values), kafka: kafka, logger: logger)
        let consumer = MartsConsumer(options: options, logger: logger)

        // The producer. Its delivery latency comes back through the delivery callback: each message's token is
        // its send time.
        let delivery = DeliveryLatency()
        let producer = try KafkaProducer(config: kafka, logger: logger) { r in
            guard case .success = r.result else { return }
            delivery.record(sentAt: UInt64(r.token))
        }

        var rpt = LoadReport(scenario: scenario, profile: profile.description, durationSeconds: duration, customers: parameters.customers,
                             partitions: partitions, cluster: cluster, delivery: Percentiles(delivery.total),
                             endToEnd: Percentiles(probe.histograms.withLock { $0.e2e }),
                             checkpoints: Percentiles(probe.histograms.withLock { $0.checkpoints }))
        rpt.warmupSeconds = max(0, min(warmup, duration / 2))
        if let storm { rpt.storm = "\(Int(storm.rate * 100))% \(storm.reason.rawValue) from \(compact(storm.at)) s for \(compact(storm.length)) s" }

        // Two services in one group: the consumer's poll loop and the producer's send loop, each on a thread
        // of its own. Either one ending ends the other; a graceful shutdown (Ctrl-C) stops them in reverse
        // order: the producer first (it stops sending, flushes and stops waiting for the drain), then the
        // consumer (its final checkpoint).
        let consumerStop = StopSignal(handleSignals: false)
        let consumerError = Mutex<(any Error)?>(nil)
        let consumerService = ThreadService("marts-consumer", stop: consumerStop) {
            defer { probe.ended() }
            do { try consumer.run(kafka: kafka, stop: consumerStop) } catch { consumerError.withLock { $0 = error } }
        }
        let producerStop = StopSignal(handleSignals: false)
        let loop = LoadSendLoop(test: self, world: world, producer: producer, probe: probe, delivery: delivery,
                                topics: options.topics, stormControl: stormControl, logger: logger, report: report)
        let producerService = ThreadService("loadtest-producer", stop: producerStop) { try loop.run(stop: producerStop) }
        try ServiceRunner.run([
            .init(service: consumerService, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "marts-consumer"),
            .init(service: producerService, successTerminationBehavior: .gracefullyShutdownGroup,
                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "loadtest-producer"),
        ], stop: stop, logger: logger)

        if let e = consumerError.withLock({ $0 }) {
            rpt.consumerError = "\(e)"
            logger.error("the consumer stopped: \(e)")
        }
        let st = producer.statistics
        let cs = consumer.summary
        let samples = loop.samples
        rpt.simulationExhausted = loop.simulationExhausted
        rpt.drained = loop.drained
        rpt.sent = loop.sent
        rpt.delivered = st.delivered
        rpt.deliveryFailures = st.failed
        rpt.applied = probe.applied.load(ordering: .relaxed)
        rpt.accepted = cs.accepted
        rpt.deadLettered = cs.rejected
        rpt.duplicates = cs.duplicates
        rpt.producerRate = loop.sendSeconds > 0 ? Double(loop.sent) / loop.sendSeconds : 0
        rpt.delivery = Percentiles(delivery.total)
        rpt.endToEnd = Percentiles(probe.histograms.withLock { $0.e2e })
        rpt.checkpoints = Percentiles(probe.histograms.withLock { $0.checkpoints })
        rpt.maxLagSeconds = samples.map(\.lagSeconds).max() ?? 0
        rpt.maxLagMessages = samples.map(\.lagMessages).max() ?? 0
        rpt.alerts = consumer.alerts.map { "\($0.state.rawValue) \($0.rule) [\($0.scope)] at \($0.at): observed \(String(format: "%.1f%%", $0.observedRate * 100)) vs baseline \(String(format: "%.1f%%", $0.baselineRate * 100))" }
        rpt.errors = st.failed + cs.rejected + consumer.metrics.checkpointFailures + (rpt.drained ? 0 : 1) + (rpt.consumerError == nil ? 0 : 1)
        rpt.samples = samples
        return rpt
    }
}

/// Delivery latency of the load test's messages, in microseconds, fed by the producer's delivery callback.
final class DeliveryLatency: Sendable {
    private let histograms = Mutex((total: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three),
                                    interval: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)))
    /// Messages sent before this time (uptime ns) are warm-up: left out of the overall histogram.
    let measureFrom = Atomic<UInt64>(UInt64.max)

    func record(sentAt ns: UInt64) {
        let now = DispatchTime.now().uptimeNanoseconds
        let micros = now > ns ? (now - ns) / 1000 : 0
        let measured = ns >= measureFrom.load(ordering: .relaxed)
        histograms.withLock {
            if measured { _ = $0.total.record(micros) }
            _ = $0.interval.record(micros)
        }
    }

    var total: Histogram<UInt64> { histograms.withLock { $0.total } }

    /// The latencies since the last call.
    func takeInterval() -> Histogram<UInt64> {
        histograms.withLock { h in
            defer { h.interval.reset() }
            return h.interval
        }
    }
}

// MARK: Report rendering

extension LoadTest {
    /// Customers needed for about `events` events: measured on a small sample of the same scenario.
    public static func customersFor(events: Double, parameters: SimulationParameters) throws -> Int {
        var sample = parameters
        sample.customers = 300
        sample.storm = nil
        var w: World
        do { w = try World(sample) } catch { throw StreamSetupError(error.description) }
        var n = 0
        while w.next() != nil { n += 1 }
        let perCustomer = max(1.0, Double(n) / 300)
        return max(300, Int((events / perCustomer * 1.3).rounded(.up)) + 100)
    }
}
