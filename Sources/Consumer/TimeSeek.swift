import Events
import Foundation
import Kafka
import Logging

/// Where each partition starts at a point in time, by ListOffsets with a timestamp, checked against the
/// messages themselves: the message before each answer must be earlier and the one at it not earlier.
/// A cluster that cannot answer, or answers wrongly (the embedded broker replies with the end offset for
/// any time), gives nil: the caller then scans from the earliest offset and skips earlier messages.
public enum TimeSeek {
    public static func offsets(at time: Timestamp, partitions: [TopicPartition], kafka: KafkaConfig, logger: Logger) -> [TopicPartition: Int64]? {
        do {
            let admin = try KafkaAdmin(config: kafka, logger: logger)
            let found = try admin.offsets(forTimes: Dictionary(uniqueKeysWithValues: partitions.map { ($0, time.ms) }))
            var marks: [TopicPartition: Watermarks] = [:]
            for tp in partitions { marks[tp] = try admin.watermarks(tp) }
            // The messages to look at: found-1 (must be earlier) and found (must not be).
            var wanted: [TopicPartition: Set<Int64>] = [:]
            var starts: [TopicPartition: KafkaOffset] = [:]
            for (tp, o) in found {
                guard let w = marks[tp] else { continue }
                var s = Set<Int64>()
                if o > w.low { s.insert(o - 1) }
                if o < w.high { s.insert(o) }
                if let first = s.min() {
                    wanted[tp] = s
                    starts[tp] = KafkaOffset(first)
                }
            }
            if !starts.isEmpty {
                var config = kafka
                config["group.id"] = config["group.id"] ?? "undercurrent-time-seek"
                let consumer = try KafkaConsumer(config: config, logger: logger)
                defer { consumer.close() }
                try consumer.assign(starts)
                let deadline = ContinuousClock.now + .seconds(10)
                while !wanted.isEmpty {
                    guard ContinuousClock.now < deadline else { throw TimeSeekError("timed out reading the messages at the offsets found") }
                    for m in try consumer.poll(maxMessages: 100, timeout: .milliseconds(200), includeHeaders: false) {
                        let tp = m.topicPartition
                        guard wanted[tp]?.contains(m.offset) == true, let ts = m.timestampMs else { continue }
                        let ok = m.offset == found[tp]! ? ts >= time.ms : ts < time.ms
                        if !ok { throw TimeSeekError("the offset it gave for \(tp) does not match the message timestamps") }
                        wanted[tp]!.remove(m.offset)
                        if wanted[tp]!.isEmpty { wanted[tp] = nil }
                    }
                }
            }
            logger.notice("starting at \(time): offsets looked up by timestamp", metadata: [LogKey.offsets: "\(found.sorted { $0.key < $1.key })"])
            return found
        } catch {
            logger.notice("the cluster cannot look up offsets by timestamp (\(error)); scanning from the earliest offset and skipping messages before \(time)")
            return nil
        }
    }
}

struct TimeSeekError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
