import Consumer
import Archives
import ArgumentParser
import Events
import Foundation
import Kafka
import Logging

/// A time on the command line: RFC 3339 (`2025-03-01T12:00:00Z`) or a date (`2025-03-01`, midnight UTC).
public enum TimeArgument {
    public static func parse(_ text: String, option: String) throws -> Timestamp {
        if let t = Timestamp(rfc3339: text) { return t }
        if let d = Day(iso: Array(text.utf8)) { return Timestamp(ms: d.days * Timestamp.millisecondsPerDay) }
        throw ValidationError("\(option): expected a time like 2025-03-01T12:00:00Z or a date 2025-03-01, got '\(text)'")
    }
}

// MARK: Recording

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
                    report: (String) -> Void = { Console.progress($0) }) throws -> Summary {
        let started = ContinuousClock.now
        var summary = Summary()
        let admin = try KafkaAdmin(config: kafka, logger: logger)
        var partitions: [TopicPartition] = []
        for t in topics {
            for p in try admin.metadata(topic: t).first?.partitions ?? [] { partitions.append(TopicPartition(t, p)) }
        }
        guard !partitions.isEmpty else { throw CLIError("no partitions found for topics \(topics.joined(separator: ","))") }
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
        var (config, tuned) = EmbeddedBroker.tuned(kafka)
        if tuned { logger.notice("embedded broker: fetch.wait.max.ms=\(EmbeddedBroker.fetchWaitMs) (set it with -X to override)") }
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
            for m in try consumer.poll(maxMessages: 5000, timeout: .milliseconds(200), includeHeaders: true) {
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
                report("record: \(summary.recorded) recorded, \(summary.skipped) outside the time range" + (follow ? " (following; Ctrl-C ends)" : ", \(total > 0 ? Int(100 * done / total) : 100)% of the backlog"))
                lastReport = now
            }
        }
        summary.interrupted = stop.isStopped
        summary.seconds = (ContinuousClock.now - started).seconds
        return summary
    }
}

public struct RecordCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Capture topics into an archive (NDJSON, gzip-compressed when the name ends in .gz).",
        discussion: """
        Records keys, values, headers, timestamps, partitions and offsets, from the earliest offset (or --from-time)
        up to the end of each partition as it was at start, or with --follow until Ctrl-C. The archive is written
        under FILE.partial and renamed into place when the recording ends, also on Ctrl-C.
        """
    )

    @Option(help: "Comma-separated topics.") var topics = Topics.inputs.joined(separator: ",")
    @Option(help: "Archive to write; '.gz' compresses, '-' writes to stdout.") var out: String
    @Option(help: "Only messages at or after this time (RFC 3339 or YYYY-MM-DD).") var fromTime: String?
    @Option(help: "Only messages at or before this time (RFC 3339 or YYYY-MM-DD).") var untilTime: String?
    @Flag(help: "Keep recording new messages after catching up, until Ctrl-C.") var follow = false
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws {
        guard !topicList.isEmpty else { throw ValidationError("--topics: expected a comma-separated list of topics") }
        if let fromTime { _ = try TimeArgument.parse(fromTime, option: "--from-time") }
        if let untilTime { _ = try TimeArgument.parse(untilTime, option: "--until-time") }
    }

    var topicList: [String] { topics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    public func run() throws {
        let logger = common.makeLogger("record")
        let stop = StopSignal()
        let recorder = Recorder(topics: topicList, fromTime: try fromTime.map { try TimeArgument.parse($0, option: "--from-time") },
                                untilTime: try untilTime.map { try TimeArgument.parse($0, option: "--until-time") }, follow: follow)
        let writer = try ArchiveWriter(path: out)
        let summary: Recorder.Summary
        do {
            summary = try recorder.run(kafka: try kafka.kafkaConfig(), to: writer, stop: stop, logger: logger)
        } catch {
            try? writer.close()
            Console.endProgress()
            Console.err("record: error: \(error)")
            throw ExitCode(1)
        }
        try writer.close()
        Console.endProgress()
        Console.err("record: \(summary.recorded) messages to \(out) in \(String(format: "%.1f", summary.seconds)) s"
                    + (summary.skipped > 0 ? ", \(summary.skipped) outside the time range skipped" : "")
                    + (summary.interrupted ? " (interrupted; the archive holds what was recorded)" : ""))
    }
}

// MARK: Replay

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
    /// Source topic → destination topic; unmapped topics keep their name.
    public var topicMap: [String: String] = [:]
    /// Write each record to its recorded partition instead of partitioning by key.
    public var keepPartitions = false

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
    }

    public func run(archive: String, producer: KafkaProducer, stop: StopSignal, logger: Logger,
                    report: (String) -> Void = { Console.progress($0) }) throws -> Summary {
        let started = ContinuousClock.now
        var summary = Summary()
        var firstTime: Int64?
        var rateDue = started
        var lastReport = started
        var typeHeaders: [String: [KafkaHeader]] = [:]
        var reader = try ArchiveReader(path: archive).makeIterator()
        while !stop.isStopped, let item = reader.next() {
            let record: ArchiveRecord
            switch item {
            case let .success(r): record = r
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
                while !stop.isStopped && ContinuousClock.now < due {
                    Thread.sleep(forTimeInterval: min(0.05, (due - ContinuousClock.now).seconds))
                }
            }
            if let rate {
                rateDue = rateDue + .nanoseconds(Int64(1e9 / rate))
                let now = ContinuousClock.now
                if rateDue > now { Thread.sleep(forTimeInterval: (rateDue - now).seconds) }
                else if now - rateDue > .seconds(1) { rateDue = now }
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
            try producer.send(ProducerMessage(topic: topicMap[record.topic] ?? record.topic, key: record.key, value: record.value,
                                              headers: headers, timestampMs: record.timestamp?.ms,
                                              partition: keepPartitions ? record.partition : nil))
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
        try producer.flush(timeout: .seconds(120))
        let s = producer.statistics
        summary.delivered = s.delivered
        summary.failed = s.failed
        summary.firstFailure = producer.firstDeliveryFailure
        summary.seconds = (ContinuousClock.now - started).seconds
        return summary
    }
}

public struct ReplayCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish an archive back to Kafka, preserving keys, headers and event timestamps.",
        discussion: """
        Reads archives written by `record` or `simulate` (plain or .gz). --speed 3600 replays an hour of history
        per second; --speed max (the default) as fast as the cluster takes it; --rate caps messages per second.
        --topic-map billing=replay.billing (repeatable) replays into fresh topics beside the live ones.
        """
    )

    @Option(help: "Archive to replay.") var from: String
    @Option(help: "'max', or N: N times the original pacing.") var speed = "max"
    @Option(help: "At most this many messages per second.") var rate: Double?
    @Option(help: "Only records at or after this time (RFC 3339 or YYYY-MM-DD).") var fromTime: String?
    @Option(help: "Only records at or before this time (RFC 3339 or YYYY-MM-DD).") var untilTime: String?
    @Option(help: "old=new: publish records of topic old to topic new (repeatable).") var topicMap: [String] = []
    @Flag(help: "Write records to their recorded partition instead of partitioning by key.") var keepPartitions = false
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws { _ = try replayer() }

    func replayer() throws -> Replayer {
        var r = Replayer()
        if speed != "max" {
            guard let n = Double(speed), n > 0, n.isFinite else { throw ValidationError("--speed: expected 'max' or a positive number, got '\(speed)'") }
            r.speed = .times(n)
        }
        if let rate {
            guard rate > 0, rate.isFinite else { throw ValidationError("--rate: expected a positive number of messages per second, got \(rate)") }
            r.rate = rate
        }
        r.fromTime = try fromTime.map { try TimeArgument.parse($0, option: "--from-time") }
        r.untilTime = try untilTime.map { try TimeArgument.parse($0, option: "--until-time") }
        for m in topicMap {
            let parts = m.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--topic-map: expected old=new, got '\(m)'")
            }
            r.topicMap[parts[0]] = parts[1]
        }
        r.keepPartitions = keepPartitions
        return r
    }

    public func run() throws {
        let logger = common.makeLogger("replay")
        let stop = StopSignal()
        let producer = try KafkaProducer(config: try kafka.kafkaConfig(), logger: logger)
        let summary = try replayer().run(archive: from, producer: producer, stop: stop, logger: logger)
        Console.endProgress()
        Console.err("replay: sent \(summary.sent), delivered \(summary.delivered), failed \(summary.failed) in \(String(format: "%.1f", summary.seconds)) s"
                    + (summary.skipped > 0 ? ", \(summary.skipped) outside the time range" : "")
                    + (summary.badLines > 0 ? ", \(summary.badLines) unreadable lines" : "")
                    + (summary.interrupted ? " (interrupted, flushed)" : ""))
        if summary.failed > 0 || summary.delivered != summary.sent {
            Console.err("replay: error: \(summary.sent - summary.delivered) messages not delivered; first failure: \(summary.firstFailure?.description ?? "unknown")")
            throw ExitCode(1)
        }
        if summary.interrupted { throw ExitCode(130) }
    }
}

// MARK: Starting at a time
