import Checkpoints
import CoreMetrics
import Events
import Foundation
import Kafka
import Logging
import Marts
import Synchronization
import Telemetry

/// What the consumer reports about itself at each progress report (also for `/health` and the progress line).
public struct ConsumerMetrics: Sendable {
    /// The consumer's counts so far.
    public var summary = MartsConsumer.Summary()
    /// Input messages taken in per second over the last report interval (for the progress line; Prometheus
    /// gets the counters and computes rates itself).
    public var eventsPerSecond = 0.0
    public var asOf: Timestamp?
    /// Messages behind the end of each assigned partition.
    public var lag: [TopicPartition: Int64] = [:]
    /// How long ago the next message of each assigned partition was written (see `LagClock`).
    public var lagSeconds: [TopicPartition: Double] = [:]
    public var checkpointFailures = 0
    public var kafkaClientErrors = 0
    /// Sinks that can fall behind (the PostgreSQL sink).
    public var sinks: [SinkStatus] = []
    /// How long no broker has answered; nil while the cluster is reachable.
    public var clusterWaitingSeconds: Double?
    /// Risk changes, alerts and dead letters handed to Kafka and not yet delivered (0 without Kafka outputs). A
    /// checkpoint waits for them; at the output queue's limit (100,000 by default) consumption waits too.
    public var outputsInFlight = 0
    /// Where each open topic-partition's history starts.
    public var history: [HistoryStart] = []
    /// What the failure-spike detector can catch at the present volume, per scope, for an outage failing
    /// `referenceOutageRate` of a scope's first attempts.
    public var detectionReach: [DetectionReach] = []
    /// Payment attempts the alert engine left out because their minute was evaluated already (since the engine's
    /// state began, restored across restarts).
    public var lateAlertAttempts = 0
    /// Every scope the alert engine watches, and whether a failure spike fires in it now.
    public var alertScopes: [(rule: String, scope: String, firing: Bool)] = []
    /// The outage the reach is stated for: half of a scope's first attempts failing.
    public static let referenceOutageRate = 0.5

    public init() {}

    public var totalLag: Int64 { lag.values.reduce(0, +) }
}

/// The consumer's instruments in its process's `MetricsRegistry`, brought up to date from each report's
/// `ConsumerMetrics`. Per-partition series appear on assignment and go with revocation.
public final class ConsumerTelemetry: Sendable {
    public let registry: MetricsRegistry
    private let accepted, duplicates, rejected, afterUntil, beforeStart, deadLettered: TotalCounter
    private let checkpoints, checkpointFailures, alertsFiring, alertsResolved, clientErrors: TotalCounter
    private let checkpointDuration: CoreMetrics.Timer
    private let asOf: Meter
    private let clusterUp: Meter
    private let outputsInFlight: Meter
    private let lateAttempts: Meter
    private let historySeries = Mutex<[TopicPartition: Meter]>([:])
    private let partitions = Mutex<[TopicPartition: (messages: Meter, seconds: Meter)]>([:])
    private let sinks = Mutex<[String: (up: Meter, checkpoints: Meter, seconds: Meter, commits: TotalCounter)]>([:])
    private let reachSeries = Mutex<[String: (attempts: Meter, seconds: Meter?)]>([:])
    private let spikeSeries = Mutex<[String: Meter]>([:])

    public init(registry: MetricsRegistry) {
        self.registry = registry
        func input(_ outcome: String) -> TotalCounter {
            TotalCounter(registry.counter("undercurrent_input_messages_total", help: "Input messages by outcome.", labels: [("outcome", outcome)]))
        }
        accepted = input("accepted")
        duplicates = input("duplicate")
        rejected = input("rejected")
        afterUntil = input("after_until")
        beforeStart = input("before_start")
        deadLettered = TotalCounter(registry.counter("undercurrent_dlq_messages_total", help: "Messages sent to the dead-letter topic."))
        checkpoints = TotalCounter(registry.counter("undercurrent_checkpoints_total", help: "Partition checkpoints written."))
        checkpointFailures = TotalCounter(registry.counter("undercurrent_checkpoint_failures_total", help: "Checkpoint writes that failed (and were retried)."))
        checkpointDuration = registry.histogram("undercurrent_checkpoint_duration_seconds", help: "Time to write one partition's checkpoint.",
                                                buckets: MetricsRegistry.durationBuckets)
        func alerts(_ state: String) -> TotalCounter {
            TotalCounter(registry.counter("undercurrent_alerts_total", help: "Failure-spike alerts by state change.", labels: [("state", state)]))
        }
        alertsFiring = alerts("firing")
        alertsResolved = alerts("resolved")
        clientErrors = TotalCounter(registry.counter("undercurrent_kafka_client_errors_total", help: "Errors reported by the Kafka client (broker down, timeouts)."))
        asOf = registry.gauge("undercurrent_as_of_timestamp_seconds", help: "Largest event time accepted (the marts' as-of), as a Unix time.")
        asOf.set(Double.nan)
        clusterUp = registry.gauge("undercurrent_kafka_cluster_up", help: "Whether a broker of the cluster answers (1) or none does (0).")
        clusterUp.set(1.0)
        outputsInFlight = registry.gauge("undercurrent_outputs_in_flight",
                                         help: "Risk, alert and dead-letter messages sent to Kafka and not yet delivered.")
        outputsInFlight.set(0.0)
        lateAttempts = registry.gauge("undercurrent_alert_late_attempts",
                                      help: "Payment attempts that arrived after their minute was evaluated (more than the alert rules' allowed lateness behind the slowest payments partition): left out of failure-spike alerting, still in the marts. Kept with the alert engine's state across restarts.")
        lateAttempts.set(0.0)
    }

    public func publish(_ m: ConsumerMetrics, checkpointDurations: [Double] = []) {
        let s = m.summary
        accepted.update(s.accepted)
        duplicates.update(s.duplicates)
        rejected.update(s.rejected)
        afterUntil.update(s.skippedAfterUntil)
        beforeStart.update(s.skippedBeforeStart)
        deadLettered.update(s.rejected)
        checkpoints.update(s.checkpoints)
        checkpointFailures.update(m.checkpointFailures)
        for seconds in checkpointDurations { checkpointDuration.recordNanoseconds(Int64(seconds * 1e9)) }
        alertsFiring.update(s.alertsFiring)
        alertsResolved.update(s.alertsResolved)
        clientErrors.update(m.kafkaClientErrors)
        asOf.set(m.asOf.map { Double($0.ms) / 1000 } ?? .nan)
        clusterUp.set(m.clusterWaitingSeconds == nil ? 1.0 : 0.0)
        outputsInFlight.set(Double(m.outputsInFlight))
        lateAttempts.set(Double(m.lateAlertAttempts))
        reachSeries.withLock { series in
            for r in m.detectionReach {
                var g = series[r.scope] ?? (registry.gauge("undercurrent_alert_scope_attempts_per_hour",
                                                           help: "First payment attempts an hour in each scope the failure-spike detector watches (its baseline's decayed rate).",
                                                           labels: [("scope", r.scope)]), nil)
                g.attempts.set(r.attemptsPerHour)
                if let hours = r.hoursToDetect {
                    let gauge = g.seconds ?? registry.gauge("undercurrent_alert_detection_seconds",
                                                            help: "Expected time from the start of an outage failing outage_rate of a scope's first attempts to its alert, at the present volume; absent while the scope's baseline is being learnt.",
                                                            labels: [("scope", r.scope), ("outage_rate", "\(r.outageRate)")])
                    gauge.set(hours * 3600)
                    g.seconds = gauge
                } else if let gauge = g.seconds {
                    gauge.destroy()
                    g.seconds = nil
                }
                series[r.scope] = g
            }
        }
        spikeSeries.withLock { series in
            for s in m.alertScopes {
                let key = s.rule + "|" + s.scope
                let gauge = series[key] ?? registry.gauge("undercurrent_failure_spike_firing",
                                                          help: "Whether a failure-spike alert fires now (1) or not (0) in each scope the alert engine watches; the alert itself (rates, attempts, estimated start, evidence) is on the alerts topic, in alerts.ndjson and on the dashboard's /alerts page.",
                                                          labels: [("rule", s.rule), ("scope", s.scope)])
                gauge.set(s.firing ? 1.0 : 0.0)
                series[key] = gauge
            }
        }
        historySeries.withLock { series in
            for h in m.history {
                let tp = TopicPartition(h.topic, h.partition)
                let gauge = series[tp] ?? registry.gauge("undercurrent_history_missed_messages",
                                                         help: "Messages before the first one applied that were never seen (the marts' history of this topic-partition is partial when above 0).",
                                                         labels: [("topic", h.topic), ("partition", "\(h.partition)")])
                series[tp] = gauge
                gauge.set(Double(h.missedMessages))
            }
        }
        partitions.withLock { series in
            for (tp, gauges) in series where m.lag[tp] == nil {
                gauges.messages.destroy()
                gauges.seconds.destroy()
                series[tp] = nil
            }
            for (tp, lag) in m.lag {
                let labels = [("topic", tp.topic), ("partition", "\(tp.partition)")]
                let gauges = series[tp] ?? (
                    registry.gauge("undercurrent_consumer_lag_messages", help: "Messages behind the end of each assigned partition.", labels: labels),
                    registry.gauge("undercurrent_consumer_lag_seconds",
                                   help: "How long ago the next message of each assigned partition was written (0 at the end), estimated from its end offsets over time.",
                                   labels: labels))
                series[tp] = gauges
                gauges.messages.set(Double(lag))
                gauges.seconds.set(m.lagSeconds[tp] ?? 0)
            }
        }
        sinks.withLock { series in
            for status in m.sinks {
                let labels = [("sink", status.name)]
                let gauges = series[status.name] ?? (
                    registry.gauge("undercurrent_sink_up", help: "Whether the sink is connected (1) or retrying (0).", labels: labels),
                    registry.gauge("undercurrent_sink_lag_checkpoints", help: "Checkpoints taken since the sink last caught up.", labels: labels),
                    registry.gauge("undercurrent_sink_lag_seconds", help: "Age of the oldest checkpoint the sink has not written; 0 when caught up.", labels: labels),
                    TotalCounter(registry.counter("undercurrent_sink_commits_total", help: "Transactions the sink committed.", labels: labels)))
                series[status.name] = gauges
                gauges.up.set(status.connected ? 1.0 : 0.0)
                gauges.checkpoints.set(Double(status.checkpointsBehind))
                gauges.seconds.set(status.secondsBehind)
                gauges.commits.update(status.commits)
            }
        }
    }
}

extension ConsumerMetrics {
    /// What every driver's progress line says: rate, outcomes and as-of (each driver adds its own).
    var progressMetadata: Logger.Metadata {
        [
            LogKey.eventsPerSecond: "\(Int(eventsPerSecond))", LogKey.accepted: "\(summary.accepted)",
            LogKey.duplicates: "\(summary.duplicates)", LogKey.deadLettered: "\(summary.rejected)",
            LogKey.asOf: "\(asOf?.description ?? "-")",
        ]
    }
}
