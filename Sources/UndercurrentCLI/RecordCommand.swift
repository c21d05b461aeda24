import Archives
import ArgumentParser
import Checkpoints
import Consumer
import Events
import Foundation
import Kafka
import Logging
import Streams

public struct RecordCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Capture topics into an archive (NDJSON, gzip-compressed when the name ends in .gz).",
        discussion: """
        Records keys, values, headers, timestamps, partitions and offsets, from the earliest offset (or --from-time) \
        up to the end of each partition as it was at start, or with --follow until Ctrl-C. The archive is written \
        under FILE.partial and renamed into place when the recording ends, also on Ctrl-C.
        """
    )

    @Option(help: "Comma-separated topics.") var topics = Topics.inputs.joined(separator: ",")
    @Option(help: "Archive to write; '.gz' compresses, '-' writes to stdout.") var out: String
    @Option(help: "Only messages at or after this time (RFC 3339 or YYYY-MM-DD).") var fromTime: String?
    @Option(help: "Only messages at or before this time (RFC 3339, e.g. 2025-06-30T23:59:59Z; a bare date would be ambiguous).") var untilTime: String?
    @Flag(help: "Keep recording new messages after catching up, until Ctrl-C.") var follow = false
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws {
        guard !topicList.isEmpty else { throw ValidationError("--topics: expected a comma-separated list of topics") }
        for name in topicList { try StartChecks.topicName(name, option: "--topics") }
        try TimeArgument.checkRange(from: try fromTime.map { try TimeArgument.parse($0, option: "--from-time") }, fromOption: "--from-time",
                                    until: try untilTime.map { try TimeArgument.parseTime($0, option: "--until-time") }, untilOption: "--until-time")
    }

    var topicList: [String] { topics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    public func run() throws {
        try StartChecks.file(out, "the archive")
        let logger = common.makeLogger("record")
        let stop = StopSignal()
        let recorder = Recorder(topics: topicList, fromTime: try fromTime.map { try TimeArgument.parse($0, option: "--from-time") },
                                untilTime: try untilTime.map { try TimeArgument.parseTime($0, option: "--until-time") }, follow: follow)
        // Where the cluster is, before the archive is created: a bad address leaves no empty archive behind.
        let config = try kafka.kafkaConfig()
        // And that it has the topics: a misspelt one stops here, before the archive exists.
        _ = try Recorder.partitions(of: recorder.topics, admin: try KafkaAdmin(config: config, logger: logger))
        let writer = try ArchiveWriter(path: out)
        let summary: Recorder.Summary
        do {
            summary = try ServiceRunner.runBlocking("record", stop: stop, logger: logger) {
                try recorder.run(kafka: config, to: writer, stop: stop, logger: logger, report: Console.progress)
            }
        } catch {
            try? writer.close()
            Console.notice("record: error: \(ErrorWords.describe(error))")
            throw ExitCode(1)
        }
        try OutputFile.writing("the archive", out) { try writer.close() }
        Console.notice("record: \(summary.recorded) messages to \(out) in \(String(format: "%.1f", summary.seconds)) s"
                    + (summary.skipped > 0 ? ", \(summary.skipped) outside the time range skipped" : "")
                    + (summary.interrupted ? " (interrupted; the archive holds what was recorded)" : ""))
    }
}

// MARK: Replay
