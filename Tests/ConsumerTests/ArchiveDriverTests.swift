import Archives
import Checkpoints
@testable import Consumer
import Events
import Foundation
import Kafka
import Logging
import Marts
import Simulation
import Synchronization
import Testing
import TestSupport

/// The archive driver's reading side: blocks read and parsed ahead on a thread of their own come in file
/// order with every line once and its partition as the producers' partitioner gives it; a cancel ends it.
@Suite struct ArchiveDriverTests {
    func archive(_ records: [ArchiveRecord]) throws -> String {
        let path = tempDir().appendingPathComponent("a.ndjson").path
        let writer = try ArchiveWriter(path: path)
        for r in records { try writer.write(r) }
        try writer.close()
        return path
    }

    /// A payment attempt that arrives after its minute was evaluated is left out of alerting (it is in the marts),
    /// and the consumer says so: a warning with the count, the count in its metrics and in
    /// `undercurrent_alert_late_attempts`. On time, nothing is said.
    @Test func paymentAttemptsLateForAlertingAreCountedAndSaid() throws {
        let events = spikeEvents()
        let onTime = events.prefix(3000)
        // One attempt a day older than the last one, at the end of the file: its minute was evaluated long ago.
        var late = onTime.last!
        late.eventID = "late-1"
        late.occurredAt = late.occurredAt.adding(days: -1)
        for (name, records, expected) in [("on time", Array(onTime), 0), ("late", Array(onTime) + [late], 1)] {
            let path = try archive(records.map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) })
            let warnings = Mutex<[String]>([])
            var logger = Logger(label: "test") { _ in
                CallbackLogHandler(level: .warning) { e in warnings.withLock { $0.append("\(e.message)") } }
            }
            logger.logLevel = .warning
            var options = MartsConsumer.Options(stateDirectory: tempDir())
            options.alertRules = testRules
            let consumer = MartsConsumer(options: options, logger: logger)
            try consumer.run(archive: path, partitionCount: 1, stop: StopSignal(handleSignals: false))
            #expect(consumer.metrics.summary.accepted == records.count, "\(name)")
            #expect(consumer.metrics.lateAlertAttempts == expected, "\(name)")
            #expect(options.metrics.exposition().contains("undercurrent_alert_late_attempts \(expected)"), "\(name)")
            let said = warnings.withLock { $0 }.filter { $0.contains("left out of failure-spike alerting") }
            #expect(said.count == expected, "\(name): \(said)")
            #expect(said.allSatisfy { $0.hasPrefix("1 payment attempt arrived more than 120 s of event time behind") && $0.hasSuffix("1 so far") })
        }
    }

    /// Lines that are not records (bad JSON, no topic) are counted as rejected and named by their line number;
    /// empty lines are skipped; every record around them is applied.
    @Test func linesThatAreNotRecordsAreRejectedByLineNumber() throws {
        let records = history.prefix(3000).map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
        var text: [UInt8] = []
        for (i, r) in records.enumerated() {
            r.appendLine(to: &text)
            if i == 999 { text += Array(#"{"topic":"payments","value":"unterminated"#.utf8) + [0x0A] }  // line 1001
            if i == 1999 { text += Array("\n".utf8) + Array(#"{"value":"{}"}"#.utf8) + [0x0A] }  // empty 2002, no topic 2003
        }
        let path = tempDir().appendingPathComponent("bad.ndjson").path
        try Data(text).write(to: URL(fileURLWithPath: path))
        let warnings = Mutex<[String]>([])
        let logger = Logger(label: "test") { _ in
            CallbackLogHandler(level: .warning) { e in warnings.withLock { $0.append("\(e.message)") } }
        }
        let consumer = MartsConsumer(options: MartsConsumer.Options(stateDirectory: tempDir()), logger: logger)
        try consumer.run(archive: path, partitionCount: 4, stop: StopSignal(handleSignals: false))
        #expect(consumer.metrics.summary.accepted == records.count)
        #expect(consumer.metrics.summary.rejected == 2)
        let said = warnings.withLock { $0 }.filter { $0.hasPrefix("archive line") }
        #expect(said.count == 2 && said[0].hasPrefix("archive line 1001: ") && said[1].hasPrefix("archive line 2003: "), "\(said)")
    }

    @Test(arguments: [(300, 1), (300, 2), (4096, 2), (1 << 20, 2)])
    func blocksParsedAheadComeInOrderWithTheirPartitions(blockBytes: Int, threads: Int) throws {
        // More blocks than are read ahead, so the reading thread waits for the driver and resumes.
        let records = history.prefix(2000).map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
        let path = try archive(records)
        let blocks = ArchiveDriver.ParsedBlocks(try ArchiveReader(path: path).blocks(bytes: blockBytes), threads: threads, partitionCount: 12)
        defer { blocks.cancel() }
        var got: [(topic: String, key: [UInt8]?, value: [UInt8], partition: Int32)] = []
        var nextLine = 1
        var count = 0
        while let item = blocks.next() {
            guard case let .parsed(block, parts) = item else {
                Issue.record("unexpected \(item)")
                break
            }
            count += 1
            #expect(block.firstLineNumber == nextLine)
            nextLine += block.lines.count
            #expect(parts.map(\.lines.count).reduce(0, +) == block.lines.count)
            for part in parts {
                #expect(part.errors.isEmpty)
                for line in part.lines {
                    #expect(line.kind == .record)
                    got.append((part.topicNames[Int(line.topic)], line.key.map { Array(part.bytes[$0]) }, Array(part.bytes[line.value]), line.partition))
                }
            }
        }
        #expect(blockBytes >= 1 << 20 || count > ArchiveDriver.blocksAhead)
        #expect(got.count == records.count)
        for (r, g) in zip(records, got) {
            #expect(g.topic == r.topic && g.key == r.key && g.value == r.value)
            #expect(g.partition == Int32(Murmur2.partition(for: r.key ?? [], partitionCount: 12)))
        }
        #expect(blocks.next() == nil)
    }

    @Test func aCancelEndsTheReadingAndNextGivesNil() throws {
        let records = history.prefix(2000).map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
        let blocks = ArchiveDriver.ParsedBlocks(try ArchiveReader(path: try archive(records)).blocks(bytes: 300), threads: 2, partitionCount: 4)
        #expect(blocks.next() != nil)
        // Blocks read ahead and waiting (the archive has more than that many): after a cancel none is given.
        while blocks.buffered < ArchiveDriver.blocksAhead { Thread.sleep(forTimeInterval: 0.001) }
        blocks.cancel()
        #expect(blocks.next() == nil)
    }

    /// A replay reports where it is as the Kafka path does (at every batch here, `reportInterval` zero): how much
    /// of the file is applied and what the marts took so far, with the metrics file rewritten at each report.
    @Test func aReplayReportsItsProgressAndKeepsItsMetricsCurrent() throws {
        let records = history.map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
        let path = try archive(records)
        let dir = tempDir()
        var options = ConsumerOptions(stateDirectory: dir.appendingPathComponent("state"))
        options.reportInterval = .zero
        options.pollBatch = 1000
        options.metricsFile = dir.appendingPathComponent("metrics.prom")
        options.alertRules = nil
        let reports = Reports(metricsFile: options.metricsFile!)
        let logger = Logger(label: "test") { _ in reportHandler(reports) }
        let consumer = MartsConsumer(options: options, logger: logger)
        try consumer.run(archive: path, partitionCount: 4, stop: StopSignal(handleSignals: false))
        #expect(consumer.summary.accepted == records.count)

        let seen = reports.entries.withLock { $0 }
        #expect(seen.count >= records.count / 1000 - 1)
        let accepted = seen.compactMap { Int($0.metadata[LogKey.accepted] ?? "") }
        #expect(accepted.count == seen.count)
        // (Reported after each batch and at each block's start, so two reports in a row may count the same.)
        #expect(zip(accepted, accepted.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(Set(accepted).count >= records.count / 1000 - 1)
        #expect(accepted.allSatisfy { $0 <= records.count })
        // What the metrics file said at each report is what the report logged.
        #expect(seen.map(\.fileAccepted) == accepted)
        let read = seen.compactMap { $0.metadata[LogKey.archiveRead].flatMap { Int($0.dropLast()) } }
        #expect(read.count == seen.count)
        #expect(zip(read, read.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(read.allSatisfy { (1...100).contains($0) })
        #expect(seen.allSatisfy { ($0.metadata[LogKey.asOf] != "-") == (Int($0.metadata[LogKey.accepted] ?? "") ?? 0 > 0) })
    }

    /// `--until` and `--from-time` on an archive in event-time order, with its partitions one after another (as a
    /// recording may hold them), or shuffled: exactly the events in the range count, as on the Kafka path. The
    /// replay stopped at the first line after `--until` (a shuffled archive gave no event at all) and ignored
    /// `--from-time`. The same command without `--until` then applies the rest: the marts of the whole range,
    /// every event counted once (those read again are duplicates).
    @Test(arguments: [("time", false), ("partition", false), ("shuffled", false), ("time", true), ("partition", true), ("shuffled", true)])
    func aTimeRangeTakesEveryEventInItAndTheRestFollowsOnce(order: String, fromTime: Bool) throws {
        let partition = { (e: Event) in Murmur2.partition(for: Array(e.customerID.utf8), partitionCount: 4) }
        var events = history
        if order == "partition" {
            // (A stable sort: each topic-partition keeps its time order.)
            events = history.enumerated().sorted { (partition($0.element), $0.element.topic.rawValue, $0.offset) < (partition($1.element), $1.element.topic.rawValue, $1.offset) }.map(\.element)
        } else if order == "shuffled" {
            var rng = Xoshiro(seed: 8)
            events.shuffle(using: &rng)
        }
        let until = history[history.count * 3 / 4].occurredAt
        let start = fromTime ? history[history.count / 4].occurredAt : nil
        let path = try archive(events.map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) })
        let state = tempDir().appendingPathComponent("state")
        var options = ConsumerOptions(stateDirectory: state)
        options.until = until
        options.startTime = start
        options.alertRules = nil
        options.checkpointEvents = 500  // checkpoints in the middle of the run hold the cut positions too
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let consumer = MartsConsumer(options: options, logger: logger)
        try consumer.run(archive: path, partitionCount: 4, stop: StopSignal(handleSignals: false))
        let before = history.filter { start != nil && $0.occurredAt < start! }
        let inRange = history.filter { (start == nil || $0.occurredAt >= start!) && $0.occurredAt <= until }
        #expect(consumer.summary.accepted == inRange.count)
        #expect(consumer.summary.skippedBeforeStart == before.count)
        #expect(consumer.summary.skippedAfterUntil == history.count - inRange.count - before.count)
        let (snapshot, _) = try StateDirectory(state.path).load()
        #expect(snapshot.tables() == export([martState(inRange)]))

        options.until = nil
        let rest = MartsConsumer(options: options, logger: logger)
        try rest.run(archive: path, partitionCount: 4, stop: StopSignal(handleSignals: false))
        #expect(rest.summary.accepted == history.count - inRange.count - before.count)
        if order == "time" { #expect(rest.summary.duplicates == 0) }
        let (whole, _) = try StateDirectory(state.path).load()
        #expect(whole.tables() == export([martState(history.filter { start == nil || $0.occurredAt >= start! })]))
    }

    @Test func offsetTablesTakeAnyPartitionNumber() {
        var table = OffsetTable()
        let partitions: [Int32] = [0, 3, 70_000, -1, Int32.max, Int32.min, 65_535]
        for topic in 0..<3 { #expect(partitions.allSatisfy { table[topic, $0] == -1 }) }
        for (i, p) in partitions.enumerated() { table[i % 3, p] = Int64(100 + i) }
        for (i, p) in partitions.enumerated() {
            #expect(table[i % 3, p] == Int64(100 + i))
            #expect(table[(i + 1) % 3, p] == -1)
        }
    }
}

/// The "replaying" entries a replay logged, each with the accepted count its metrics file held at that moment.
private final class Reports: Sendable {
    struct Entry: Sendable {
        var metadata: [String: String]
        var fileAccepted: Int?
    }
    let metricsFile: URL
    let entries = Mutex<[Entry]>([])
    init(metricsFile: URL) { self.metricsFile = metricsFile }
}

/// Records each "replaying" entry with the accepted count the metrics file held at that moment.
private func reportHandler(_ reports: Reports) -> CallbackLogHandler {
    CallbackLogHandler(level: .info) { event in
        guard event.message.description == "replaying" else { return }
        let text = (try? String(contentsOf: reports.metricsFile, encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("undercurrent_input_messages_total{outcome=\"accepted\"}") }
        let accepted = line.flatMap { $0.split(separator: " ").last }.flatMap { Int($0) }
        let metadata = (event.metadata ?? [:]).mapValues { "\($0)" }
        reports.entries.withLock { $0.append(.init(metadata: metadata, fileAccepted: accepted)) }
    }
}
