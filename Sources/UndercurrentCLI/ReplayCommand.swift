import Archives
import ArgumentParser
import Consumer
import Events
import Foundation
import Kafka
import Logging
import Streams

public struct ReplayCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish an archive back to Kafka, preserving keys, headers and event timestamps.",
        discussion: """
        Reads archives written by `record` or `simulate` (plain or .gz). --speed 3600 replays an hour of history \
        per second; --speed max (the default) as fast as the cluster takes it; --rate caps messages per second.
        --topic-map billing=replay.billing,payments=replay.payments (or the option repeated) replays into fresh \
        topics beside the live ones.
        """
    )

    @Option(help: "Archive to replay ('-' for standard input, or a pipe).") var from: String
    @Option(help: "'max', or N: N times the original pacing.") var speed = "max"
    @Option(help: "At most this many messages per second.") var rate: Double?
    @Option(help: "Only records at or after this time (RFC 3339 or YYYY-MM-DD).") var fromTime: String?
    @Option(help: "Only records at or before this time (RFC 3339, e.g. 2025-06-30T23:59:59Z; a bare date would be ambiguous).") var untilTime: String?
    @Option(help: "old=new[,old2=new2…]: publish records of topic old to topic new (repeatable).") var topicMap: [String] = []
    @Flag(help: "Write records to their recorded partition instead of partitioning by key.") var keepPartitions = false
    @Flag(help: "With --topic-map: send records of topics it does not map under their own topics (by default the replay stops at the first such record, before sending it).") var keepUnmappedTopics = false
    @Flag(help: "Accept a gzip archive that is cut off, replaying its complete lines (otherwise they are replayed, then exit 1).") var allowTruncated = false
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
        r.untilTime = try untilTime.map { try TimeArgument.parseTime($0, option: "--until-time") }
        try TimeArgument.checkRange(from: r.fromTime, fromOption: "--from-time", until: r.untilTime, untilOption: "--until-time")
        // Pairs separated by commas (a comma is in no topic name) or in repeated options.
        for m in topicMap.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
            let parts = m.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--topic-map: expected old=new (pairs separated by commas), got '\(m)'")
            }
            for name in parts { try StartChecks.topicName(name, option: "--topic-map") }
            if let earlier = r.topicMap[parts[0]], earlier != parts[1] {
                throw ValidationError("--topic-map: \(parts[0]) is mapped twice, to \(earlier) and to \(parts[1])")
            }
            r.topicMap[parts[0]] = parts[1]
        }
        r.keepPartitions = keepPartitions
        if keepUnmappedTopics && r.topicMap.isEmpty { throw ValidationError("--keep-unmapped-topics: only with --topic-map") }
        r.keepUnmappedTopics = keepUnmappedTopics
        r.allowTruncated = allowTruncated
        return r
    }

    public func run() throws {
        try StartChecks.archive(from)
        let logger = common.makeLogger("replay")
        let stop = StopSignal()
        let config = try kafka.kafkaConfig()
        var replayer = try replayer()
        try replayer.checkTargets(admin: try KafkaAdmin(config: config, logger: logger), logger: logger)
        let producer = try KafkaProducer(config: config, logger: logger)
        let summary = try ServiceRunner.runBlocking("replay", stop: stop, logger: logger) {
            try replayer.run(archive: from, producer: producer, stop: stop, logger: logger, report: Console.progress, notice: Console.notice)
        }
        Console.notice("replay: sent \(summary.sent), delivered \(summary.delivered), failed \(summary.failed) in \(String(format: "%.1f", summary.seconds)) s"
                    + (summary.skipped > 0 ? ", \(summary.skipped) outside the time range" : "")
                    + (summary.badLines > 0 ? ", \(summary.badLines) unreadable lines" : "")
                    + (summary.interrupted ? " (interrupted, flushed)" : ""))
        if summary.failed > 0 || summary.delivered != summary.sent {
            Console.err("replay: error: \(summary.sent - summary.delivered) messages not delivered; "
                        + KafkaProducer.undelivered(gaveUp: summary.gaveUp, firstFailure: summary.firstFailure))
            throw ExitCode(1)
        }
        if let refused = summary.refused {
            Console.err("replay: error: stopped at \(refused)")
            throw ExitCode(1)
        }
        if let cutOff = summary.cutOff {
            Console.err("replay: error: \(cutOff)")
            throw ExitCode(1)
        }
        if summary.interrupted { throw ExitCode(130) }
    }
}
