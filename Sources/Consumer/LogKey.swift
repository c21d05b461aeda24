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
}

/// Partition numbers as ranges, `0-63,65`, so that a log line about 192 partitions stays one short line.
public struct PartitionRanges: CustomStringConvertible, Sendable {
    public let numbers: [Int32]
    public init(_ numbers: some Sequence<Int32>) { self.numbers = Set(numbers).sorted() }

    public var description: String {
        var parts: [String] = []
        var i = 0
        while i < numbers.count {
            var j = i
            while j + 1 < numbers.count && numbers[j + 1] == numbers[j] + 1 { j += 1 }
            parts.append(i == j ? "\(numbers[i])" : "\(numbers[i])-\(numbers[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}

/// Topic-partitions grouped by topic, `billing[0-63] payments[0-63]`.
public struct TopicPartitionRanges: CustomStringConvertible, Sendable {
    public let byTopic: [(String, PartitionRanges)]
    public init(_ partitions: some Sequence<TopicPartition>) {
        byTopic = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { ($0.key, PartitionRanges($0.value.map(\.partition))) }
    }
    public var description: String { byTopic.map { "\($0.0)[\($0.1)]" }.joined(separator: " ") }
}
