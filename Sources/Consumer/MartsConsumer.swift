import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts
import Synchronization
import Telemetry

/// The consumer: input partitions → per-partition mart states → checkpoints with their offsets.
///
/// Wires a `ConsumerCore` (state, outputs, checkpoint policy) to its checkpoints in the state directory, its
/// sinks (the alert log, the webhook, any in `options.sinks`; the Kafka topics when consuming from Kafka)
/// and one of two drivers: `run(kafka:stop:)` or `run(archive:partitionCount:stop:)`.
///
/// `@unchecked Sendable`: the core is used by the one thread that runs a driver; other threads read only
/// the reporter's snapshot and atomics.
public final class MartsConsumer: @unchecked Sendable {
    public typealias Options = ConsumerOptions
    public typealias Summary = ConsumerCore.Summary

    public let options: Options
    let logger: Logger
    let core: ConsumerCore
    let reporter: ConsumerReporter

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        core = ConsumerCore(options: options, storage: DirectoryCheckpointStorage(directory: options.stateDirectory), logger: logger)
        var sinks: [any ConsumerSink] = [AlertLogSink(stateDirectory: options.stateDirectory, logger: logger)]
        if let hook = options.alertWebhook { sinks.append(WebhookSink(hook)) }
        reporter = ConsumerReporter(metricsFile: options.metricsFile, registry: options.metrics, sinks: sinks + options.sinks, logger: logger)
    }

    /// Consumes from Kafka until stopped (or idle for `exitWhenIdle`), then takes a final checkpoint.
    public func run(kafka: KafkaConfig, stop: StopSignal) throws {
        try KafkaDriver(core: core, reporter: reporter, logger: logger).run(kafka: kafka, stop: stop)
    }

    /// Feeds an archive through the same core (see `ArchiveDriver`).
    public func run(archive path: String, partitionCount: Int, stop: StopSignal) throws {
        try ArchiveDriver(core: core, reporter: reporter, logger: logger).run(archive: path, partitionCount: partitionCount, stop: stop)
    }

    public var summary: Summary { core.summary }
    /// Alerts raised so far, in order (also sent to the alerts topic when consuming from Kafka).
    public var alerts: [Alert] { core.alerts }
    public var asOf: Timestamp? { core.asOf }
    /// What checkpoint was given up, and why, when the consumer was stopped while checkpoints kept failing.
    public var checkpointGaveUp: String? { core.checkpointGaveUp }
    /// The sink failure the run stopped with (outputs not taken or not delivered), if it did.
    public var sinkFailure: (any Error)? { core.fatalSinkError }
    /// Payment attempts that arrived after their minute was evaluated, left out of alerting.
    public var lateAlertAttempts: Int { core.lateAlertAttempts }
    /// What the failure-spike detector can catch at the volume seen (see `DetectionReach`); read it while the
    /// consumer is not running.
    public func detectionReach(outageRate: Double) -> [DetectionReach] { core.detectionReach(outageRate: outageRate) }
    /// The latest metrics (refreshed at each report), safe to read from any thread.
    public var metrics: ConsumerMetrics { reporter.latest }
    /// Messages taken in so far (safe to read from any thread, for progress).
    public var progress: Int { core.progress }
    /// Messages prepared before their duplicate-table lines are fetched together (see `MartState.warm`).
    public static var warmBatch: Int { ConsumerCore.warmBatch }
}

/// The consumer's metrics snapshot (refreshed at each report, readable from any thread) and where else it
/// goes: the process's metrics registry and the metrics file. Also carries the sinks every driver sends to
/// (the Kafka driver adds the topics).
final class ConsumerReporter: Sendable {
    private let snapshot = Mutex(ConsumerMetrics())
    private let lagClock = Mutex(LagClock<TopicPartition>())
    /// When a failing metrics file was last reported.
    private let metricsFileFailing = Mutex<ContinuousClock.Instant?>(nil)
    /// The late payment attempts last warned about, and when.
    private let lateWarned = Mutex<(count: Int, at: ContinuousClock.Instant?)>((0, nil))
    let metricsFile: URL?
    let telemetry: ConsumerTelemetry
    let sinks: [any ConsumerSink]
    let logger: Logger

    init(metricsFile: URL?, registry: MetricsRegistry, sinks: [any ConsumerSink], logger: Logger) {
        self.metricsFile = metricsFile
        self.telemetry = ConsumerTelemetry(registry: registry)
        self.sinks = sinks
        self.logger = logger
    }

    var latest: ConsumerMetrics { snapshot.withLock { $0 } }

    /// Refreshes the snapshot, the registry and the metrics file from the core, and returns the snapshot.
    @discardableResult
    func report(_ core: ConsumerCore, rate: Double, consumer: KafkaConsumer?, outputs: KafkaProducer? = nil) -> ConsumerMetrics {
        var m = ConsumerMetrics()
        m.summary = core.summary
        m.eventsPerSecond = rate
        m.asOf = core.asOf
        let positions = consumer?.positions() ?? [:]
        let now = Date().timeIntervalSince1970
        lagClock.withLock { clock in
            for (tp, p) in positions {
                clock.record(tp, end: p.end, at: now)
                m.lag[tp] = max(0, p.end - p.position)
                m.lagSeconds[tp] = clock.lagSeconds(tp, position: p.position, now: now)
            }
        }
        m.checkpointFailures = core.checkpointFailures
        m.kafkaClientErrors = consumer?.clientErrorCount ?? 0
        m.clusterWaitingSeconds = consumer?.unreachableSince.map { (ContinuousClock.now - $0).seconds }
        m.outputsInFlight = outputs?.statistics.inFlight ?? 0
        m.history = core.history
        m.sinks = sinks.compactMap(\.sinkStatus)
        m.detectionReach = core.detectionReach(outageRate: ConsumerMetrics.referenceOutageRate)
        m.alertScopes = core.alertScopes
        m.lateAlertAttempts = core.lateAlertAttempts
        warnAboutLateAttempts(m.lateAlertAttempts, allowed: core.options.alertRules?.allowedLatenessSeconds)
        snapshot.withLock { $0 = m }
        telemetry.publish(m, checkpointDurations: core.checkpointDurations)
        core.checkpointDurations.removeAll()
        if let file = metricsFile {
            do {
                try Data(telemetry.registry.exposition().utf8).write(to: file, options: .atomic)
                metricsFileFailing.withLock { $0 = nil }
            } catch {
                // Held and retried at each report; said at once, then once a minute while it lasts.
                let now = ContinuousClock.now
                let say = metricsFileFailing.withLock { last -> Bool in
                    if let last, now - last < .seconds(60) { return false }
                    last = now
                    return true
                }
                if say { logger.warning("cannot write metrics to \(file.path): \(ErrorWords.describe(error)); retrying at each report") }
            }
        }
        return m
    }

    /// Payment attempts the alert engine left out because their minute was evaluated already: said when their
    /// number grows, at most once a minute (they are in the marts; alerting did not see them).
    private func warnAboutLateAttempts(_ count: Int, allowed: Int?) {
        let now = ContinuousClock.now
        let grown = lateWarned.withLock { w -> Int? in
            guard count > w.count, w.at.map({ now - $0 >= .seconds(60) }) ?? true else { return nil }
            defer { w = (count, now) }
            return count - w.count
        }
        guard let grown else { return }
        logger.warning("\(grown) payment attempt\(grown == 1 ? "" : "s") arrived more than \(allowed ?? 0) s of event time behind the slowest payments partition, after their minute was evaluated: left out of failure-spike alerting (they are in the marts); \(count) so far",
                       metadata: [LogKey.alertsLateAttempts: "\(count)"])
    }
}
