import Consumer
import Archives
import Events
import Foundation
import Kafka
import Logging

/// Captures topics into an archive: keys, values, headers, timestamps, partitions and offsets.
public struct Recorder {
    public var topics: [String]
    public var fromTime: Timestamp?
    public var untilTime: Timestamp?
    /// Keep recording after catching up (until stopped) instead of ending at the high watermarks seen at start.
    public var follow = false

    public init(topics: [String], fromTime: Timestamp? = nil, untilTime: Timestamp? = nil, follow: Bool = false) {
        self.topics = topics
        self.fromTime = fromTime
        self.untilTime = untilTime
        self.follow = follow
    }

    public struct Summary: Sendable {
        public var recorded = 0
        public var skipped = 0
        public var seconds = 0.0
        public var interrupted = false
        /// Whether the start offsets came from a lookup by timestamp (false: scanned and skipped).
        public var seekedByTime = false
    }

    public func run(kafka: KafkaConfig, to writer: ArchiveWriter, stop: StopSignal, logger: Logger,
                    report: (String) -> Void) throws -> Summary {
        let started = ContinuousClock.now
        var summary = Summary()
        let admin = try KafkaAdmin(config: kafka, logger: logger)
        let partitions = try Self.partitions(of: topics, admin: admin)
        var ends: [TopicPartition: Int64] = [:]
        var starts: [TopicPartition: KafkaOffset] = [:]
        for tp in partitions {
            let w = try admin.watermarks(tp)
            ends[tp] = w.high
            starts[tp] = KafkaOffset(w.low)
        }
        if let fromTime, let found = TimeSeek.offsets(at: fromTime, partitions: partitions, kafka: kafka, logger: logger) {
            for (tp, o) in found { starts[tp] = KafkaOffset(o) }
            summary.seekedByTime = true
        }
        var (config, tuned) = EmbeddedBroker.tuned(kafka, group: false)  // (assigned partitions, no group to join)
        if !tuned.isEmpty { logger.notice("\(EmbeddedBroker.tunedNotice(tuned))") }
        config["group.id"] = config["group.id"] ?? "undercurrent-record"
        config["enable.auto.commit"] = "false"
        let consumer = try KafkaConsumer(config: config, logger: logger)
        defer { consumer.close() }
        try consumer.assign(starts)
        var position: [TopicPartition: Int64] = [:]
        for (tp, o) in starts { position[tp] = o.rawValue }
        func caughtUp() -> Bool { !follow && partitions.allSatisfy { position[$0, default: 0] >= ends[$0, default: 0] } }
        var lastReport = ContinuousClock.now
        let total = partitions.reduce(Int64(0)) { $0 + max(0, ends[$1, default: 0] - (starts[$1]?.rawValue ?? 0)) }
        while !stop.isStopped && !caughtUp() {
            let messages = try consumer.poll(maxMessages: 5000, timeout: .milliseconds(200), includeHeaders: true)
            if messages.isEmpty {
                // A partition whose last offsets are a transaction marker (or messages of an aborted transaction)
                // hands out nothing more: librdkafka's position steps over them, so the end seen at start is reached.
                for (tp, p) in consumer.consumedPositions() where p > position[tp, default: 0] { position[tp] = p }
            }
            for m in messages {
                let tp = m.topicPartition
                position[tp] = m.offset + 1
                if !follow, m.offset >= ends[tp, default: 0] { continue }  // arrived after the start: not ours
                let ts = m.timestampMs.map { Timestamp(ms: $0) }
                if let fromTime, let ts, ts < fromTime { summary.skipped += 1; continue }
                if let untilTime, let ts, ts > untilTime { summary.skipped += 1; continue }
                try writer.write(ArchiveRecord(topic: m.topic, partition: m.partition, offset: m.offset, key: m.key.map { Array($0) },
                                               timestamp: ts, headers: m.headers.map { ($0.name, String(decoding: $0.value, as: UTF8.self)) },
                                               value: Array(m.value)))
                summary.recorded += 1
            }
            let now = ContinuousClock.now
            if now - lastReport >= .seconds(1) {
                let done = partitions.reduce(Int64(0)) { $0 + max(0, min(position[$1, default: 0], ends[$1, default: 0]) - (starts[$1]?.rawValue ?? 0)) }
                // A record that stands still because no broker answers says so (the first answer ends it).
                var waiting = ""
                if let since = consumer.unreachableSince, !consumer.probeCluster() {
                    waiting = "; waiting for the cluster: no broker has answered for \(Int((ContinuousClock.now - since).seconds)) s (Ctrl-C keeps what is recorded)"
                }
                report("record: \(summary.recorded) recorded, \(summary.skipped) outside the time range"
                       + (follow ? " (following; Ctrl-C ends)" : ", \(total > 0 ? Int(100 * done / total) : 100)% of the backlog") + waiting)
                lastReport = now
            }
        }
        summary.interrupted = stop.isStopped
        summary.seconds = (ContinuousClock.now - started).seconds
        return summary
    }
}

extension Recorder {
    /// The partitions of `topics` (`KafkaAdmin.partitions(of:)`): a topic the cluster does not have (a typo) is a
    /// `StreamSetupError` naming it and the topics there are, never recorded as empty nor created by asking about it.
    public static func partitions(of topics: [String], admin: KafkaAdmin) throws -> [TopicPartition] {
        let found: [String: [Int32]]
        do { found = try admin.partitions(of: topics) } catch { throw StreamSetupError("cannot list the cluster's topics: \(error)") }
        let missing = topics.filter { found[$0] == nil }
        guard missing.isEmpty else {
            let there = ((try? admin.metadata()) ?? []).map(\.name)
            throw StreamSetupError("the cluster has no topic \(missing.map { "'\($0)'" }.joined(separator: ", ")) (its topics: \(Topics.listed(there)))")
        }
        return topics.flatMap { t in found[t]!.map { TopicPartition(t, $0) } }
    }
}
