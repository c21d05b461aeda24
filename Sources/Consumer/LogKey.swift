import Kafka
import Logging

/// Log metadata keys, defined once: dotted, grouped by what they describe.
public enum LogKey {
    public static let accepted = "marts.accepted"
    public static let duplicates = "marts.duplicates"
    public static let deadLettered = "marts.dlq"
    public static let asOf = "marts.as_of"
    public static let eventsPerSecond = "marts.events_per_second"
    public static let partitions = "kafka.partitions"
    public static let offsets = "kafka.offsets"
    public static let config = "kafka.config"
    public static let lagTotal = "kafka.lag_total"
    public static let lagMax = "kafka.lag_max"
    public static let alertAt = "alert.at"
    public static let alertObservedRate = "alert.observed_rate"
    public static let alertBaselineRate = "alert.baseline_rate"
    public static let alertsOpen = "alerts.open"
    public static let alertsLateAttempts = "alerts.late_attempts"
    public static let waitingSeconds = "kafka.waiting_seconds"
    public static let missedMessages = "history.missed_messages"
    public static let archiveRead = "archive.read"
    public static let archiveRemainingSeconds = "archive.remaining_seconds"
    public static let bootstrap = "kafka.bootstrap"
    public static let brokerFile = "broker.file"
    public static let sinkURI = "sink.uri"
    public static let sinkBehindCheckpoints = "sink.behind_checkpoints"
    public static let sinkRetrySeconds = "sink.retry_seconds"
}
