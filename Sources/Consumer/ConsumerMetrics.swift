import Events
import Foundation
import Kafka

/// What the consumer reports about itself, rendered in Prometheus' text exposition format (for a scrape
/// endpoint, or a file for node_exporter's textfile collector).
public struct ConsumerMetrics: Sendable {
    /// The consumer's counts so far.
    public var summary = MartsConsumer.Summary()
    public var eventsPerSecond = 0.0
    public var asOf: Timestamp?
    public var lag: [TopicPartition: Int64] = [:]
    public var checkpointFailures = 0
    public var checkpointSecondsTotal = 0.0
    public var lastCheckpointSeconds = 0.0
    public var kafkaClientErrors = 0
    /// Sinks that can fall behind (the PostgreSQL sink).
    public var sinks: [SinkStatus] = []

    public init() {}

    public var totalLag: Int64 { lag.values.reduce(0, +) }

    public var prometheusText: String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        metric("undercurrent_input_messages_total", "counter", "Input messages by outcome.", [
            ("{outcome=\"accepted\"}", "\(summary.accepted)"), ("{outcome=\"duplicate\"}", "\(summary.duplicates)"),
            ("{outcome=\"rejected\"}", "\(summary.rejected)"), ("{outcome=\"after_until\"}", "\(summary.skippedAfterUntil)"), ("{outcome=\"before_start\"}", "\(summary.skippedBeforeStart)"),
        ])
        metric("undercurrent_dlq_messages_total", "counter", "Messages sent to the dead-letter topic.", [("", "\(summary.rejected)")])
        metric("undercurrent_events_per_second", "gauge", "Input messages taken in per second over the last report interval.",
               [("", String(format: "%.1f", eventsPerSecond))])
        metric("undercurrent_as_of_timestamp_seconds", "gauge", "Largest event time accepted (the marts' as-of).",
               [("", asOf.map { String(format: "%.3f", Double($0.ms) / 1000) } ?? "NaN")])
        metric("undercurrent_consumer_lag_messages", "gauge", "Messages behind the end of each assigned partition.",
               lag.sorted { $0.key < $1.key }.map { ("{topic=\"\($0.key.topic)\",partition=\"\($0.key.partition)\"}", "\($0.value)") })
        metric("undercurrent_checkpoints_total", "counter", "Checkpoints written.", [("", "\(summary.checkpoints)")])
        metric("undercurrent_checkpoint_failures_total", "counter", "Checkpoint writes that failed (and were retried).",
               [("", "\(checkpointFailures)")])
        metric("undercurrent_checkpoint_seconds_total", "counter", "Time spent writing checkpoints.",
               [("", String(format: "%.6f", checkpointSecondsTotal))])
        metric("undercurrent_checkpoint_last_seconds", "gauge", "Duration of the last checkpoint.",
               [("", String(format: "%.6f", lastCheckpointSeconds))])
        metric("undercurrent_alerts_total", "counter", "Failure-spike alerts by state change.",
               [("{state=\"firing\"}", "\(summary.alertsFiring)"), ("{state=\"resolved\"}", "\(summary.alertsResolved)")])
        metric("undercurrent_kafka_client_errors_total", "counter", "Errors reported by the Kafka client (broker down, timeouts).",
               [("", "\(kafkaClientErrors)")])
        if !sinks.isEmpty {
            func label(_ s: SinkStatus) -> String { "{sink=\"\(s.name)\"}" }
            metric("undercurrent_sink_up", "gauge", "Whether the sink is connected (1) or retrying (0).",
                   sinks.map { (label($0), $0.connected ? "1" : "0") })
            metric("undercurrent_sink_lag_checkpoints", "gauge", "Checkpoints taken since the sink last caught up.",
                   sinks.map { (label($0), "\($0.checkpointsBehind)") })
            metric("undercurrent_sink_lag_seconds", "gauge", "Age of the oldest checkpoint the sink has not written; 0 when caught up.",
                   sinks.map { (label($0), String(format: "%.3f", $0.secondsBehind)) })
            metric("undercurrent_sink_commits_total", "counter", "Transactions the sink committed.", sinks.map { (label($0), "\($0.commits)") })
        }
        return out
    }
}
