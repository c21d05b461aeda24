import Consumer
import Archives
import Events
import Foundation
import Kafka
import Logging

/// Publishes an archive back to Kafka, preserving keys, headers and event timestamps.
public struct Replayer {
    public enum Speed: Sendable, Equatable {
        /// As fast as possible.
        case max
        /// N times the original pacing (the gaps between record timestamps divided by N).
        case times(Double)
    }

    public var speed: Speed = .max
    /// At most this many messages per second.
    public var rate: Double?
    public var fromTime: Timestamp?
    public var untilTime: Timestamp?
    /// Source topic → destination topic. Without a map every topic keeps its name; with one, a record of a topic it
    /// does not map stops the replay before it is sent (a misspelt source would otherwise send its records into the
    /// live topic), unless `keepUnmappedTopics`.
    public var topicMap: [String: String] = [:]
    /// With a `topicMap`: records of topics it does not map keep their topic's name.
    public var keepUnmappedTopics = false
    /// Write each record to its recorded partition instead of partitioning by key.
    public var keepPartitions = false
    /// Replay the complete lines of a gzip archive that is cut off (otherwise they are sent, then an error).
    public var allowTruncated = false
    /// How long the final flush waits for messages in flight.
    public var finalFlush: Duration = .seconds(120)
    /// Every topic's partition count as the cluster had it at start (`checkTargets`): with `keepPartitions`, a record
    /// whose partition its destination lacks stops the replay before it is sent.
    public var partitionCounts: [String: Int] = [:]

    public init() {}

    public struct Summary: Sendable {
        public var sent = 0
        public var skipped = 0
        public var badLines = 0
        public var delivered = 0
        public var failed = 0
        public var seconds = 0.0
        public var interrupted = false
        public var firstFailure: KafkaError?
        /// The messages the final flush left in flight, in words (nil: none).
        public var gaveUp: String?
        /// The archive ended early (its complete lines were sent).
        public var cutOff: ArchiveError?
        /// The record the replay stopped at without sending it, and why (a topic the map leaves out, a partition the
        /// destination lacks, a record the client refused): what came before it was sent, flushed and counted.
        public var refused: String?
    }

    public func run(archive: String, producer: KafkaProducer, stop: StopSignal, logger: Logger,
                    report: (String) -> Void, notice: (String) -> Void) throws -> Summary {
        let started = ContinuousClock.now
        var summary = Summary()
        var firstTime: Int64?
        var rateDue = started
        var lastReport = started
        var typeHeaders: [String: [KafkaHeader]] = [:]
        var archiveReader = try ArchiveReader(path: archive)
        archiveReader.allowTruncated = allowTruncated
        var reader = archiveReader.makeIterator()
        reading: while !stop.isStopped, let item = reader.next() {
            let record: ArchiveRecord
            switch item {
            case let .success(r): record = r
            case let .failure(e) where e.truncated:
                summary.cutOff = e  // every complete line was sent
                break reading
            case let .failure(e) where archiveReader.isStream && summary.sent + summary.skipped + summary.badLines == 0:
                // (A file was checked before the run; a stream cannot be without losing what was read.)
                throw ArchiveError.notAnArchive(archive, firstRecord: "\(e)")
            case let .failure(e):
                logger.warning("\(e)")
                summary.badLines += 1
                continue
            }
            if let fromTime, let t = record.timestamp, t < fromTime { summary.skipped += 1; continue }
            if let untilTime, let t = record.timestamp, t > untilTime { summary.skipped += 1; continue }
            if case let .times(n) = speed, let t = record.timestamp?.ms {
                let base = firstTime ?? t
                firstTime = base
                let due = started + .milliseconds(Int64(Double(t - base) / n))
                while !stop.isStopped && ContinuousClock.now < due { stop.sleep(due - ContinuousClock.now) }  // woken at once by a stop
            }
            if let rate {
                // The first event at once, each next one an interval after the one before (a wait cut short by a stop).
                let now = ContinuousClock.now
                if rateDue > now { stop.sleep(rateDue - now) }
                else if now - rateDue > .seconds(1) { rateDue = now }  // don't burst after a stall
                rateDue = rateDue + .nanoseconds(Int64(1e9 / rate))
            }
            var headers = record.headers.map { KafkaHeader($0.0, $0.1) }
            if headers.isEmpty {
                // A simulator archive carries no headers: derive the producers' ones from the event.
                if case let .success(event) = EventDecoder.decode(record.value, topic: InputTopic(rawValue: record.topic)) {
                    let type = event.type.rawValue
                    if typeHeaders[type] == nil { typeHeaders[type] = [KafkaHeader("event-type", type), KafkaHeader("schema", "1")] }
                    headers = typeHeaders[type]!
                }
            }
            let mapped = topicMap[record.topic]
            if mapped == nil && !topicMap.isEmpty && !keepUnmappedTopics {
                summary.refused = "\(Self.place(record)): --topic-map does not map \(record.topic) (it maps \(topicMap.keys.sorted().joined(separator: ", "))), "
                    + "so it would go to the topic \(record.topic) itself; map it too, or pass --keep-unmapped-topics to send such records under their own topics"
                break reading
            }
            let target = mapped ?? record.topic
            let partition = keepPartitions ? record.partition : nil
            // A partition the destination lacks: by the counts listed at start, or by librdkafka for a destination
            // created since (it refuses the message once it has the topic's metadata).
            func lacksPartition(_ p: Int32) -> String {
                "\(Self.place(record)): \(target) has no partition \(p); create \(target) with as many partitions as \(record.topic) has, "
                    + "or leave out --keep-partitions (records are then partitioned by key)"
            }
            if let p = partition, let count = partitionCounts[target], Int(p) >= count {
                summary.refused = lacksPartition(p)
                break reading
            }
            let taken: Bool
            // A stop while the cluster is away (the queue full) ends the wait at once.
            do {
                taken = try producer.send(ProducerMessage(topic: target, key: record.key, value: record.value, headers: headers,
                                                          timestampMs: record.timestamp?.ms, partition: partition),
                                          cancelled: { stop.isStopped })
            } catch {
                let unknownPartition = (error as? KafkaError)?.code == KafkaErrorCode.unknownPartition
                summary.refused = partition.flatMap { unknownPartition ? lacksPartition($0) : nil } ?? "\(Self.place(record)): \(error)"
                break reading
            }
            guard taken else { break reading }
            summary.sent += 1
            if summary.sent & 1023 == 0 {
                let now = ContinuousClock.now
                if now - lastReport >= .seconds(1) {
                    let s = producer.statistics
                    report("replay: \(summary.sent) sent, \(s.delivered) delivered, at \(record.timestamp?.description ?? "-")")
                    lastReport = now
                }
            }
        }
        summary.interrupted = stop.isStopped
        summary.gaveUp = producer.flushSaying("replay", stop: stop, timeout: finalFlush, notice: notice)
        let s = producer.statistics
        summary.delivered = s.delivered
        summary.failed = s.failed
        summary.firstFailure = producer.firstDeliveryFailure
        summary.seconds = (ContinuousClock.now - started).seconds
        return summary
    }
}

extension Replayer {
    /// A record in words, for messages: "the record of billing[2] at offset 3".
    static func place(_ record: ArchiveRecord) -> String {
        "the record of \(record.topic)" + (record.partition.map { "[\($0)]" } ?? "") + (record.offset.map { " at offset \($0)" } ?? "")
    }

    /// Lists the cluster's topics before anything is sent, keeping their partition counts: a cluster no broker
    /// answers for is a `StreamSetupError` (the replay sent into it and waited two minutes for every message to time out).
    /// Returns the mapped destination topics the cluster does not have, each with a warning: a cluster that creates
    /// topics on first use gives it its default partition count (keys may land elsewhere than in the topic it stands
    /// in for, and `--keep-partitions` may name partitions it lacks); one that does not fails every message to it,
    /// after librdkafka's message timeout (`message.timeout.ms`, five minutes by default).
    @discardableResult
    public mutating func checkTargets(admin: KafkaAdmin, logger: Logger) throws -> [String] {
        let map = topicMap
        let counts: [String: Int]
        do {
            counts = Dictionary(try admin.metadata().map { ($0.name, $0.partitions.count) }, uniquingKeysWith: { a, _ in a })
        } catch {
            throw StreamSetupError("cannot list the cluster's topics: \(error)")
        }
        partitionCounts = counts
        let missing = map.sorted { $0.key < $1.key }.filter { counts[$0.value] == nil }
        for (old, new) in missing {
            let like = counts[old].map { "; \(old) has \($0) partitions: create \(new) with as many first" } ?? ""
            logger.warning("topic \(new) is not on the cluster: it is created on first use if the cluster allows it, with the cluster's default partition count, else every message to it fails after message.timeout.ms\(like)")
        }
        return missing.map(\.value)
    }
}

// MARK: Starting at a time
