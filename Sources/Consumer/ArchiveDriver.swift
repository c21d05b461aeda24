import Archives
import Events
import Foundation
import Kafka
import Logging
import Marts

/// Feeds the core from an archive, without Kafka, in batches as a poll would give them, so a batch's
/// partitions are applied on `options.threads` threads as on the Kafka path. Records are assigned to
/// partition numbers as the producers' murmur2 partitioner would with `partitionCount` partitions. A record
/// without an offset gets its position among its topic-partition's records in the file, so a restarted run
/// skips what its checkpoints already hold, exactly as a Kafka run resumes at its offsets.
final class ArchiveDriver {
    let core: ConsumerCore
    let options: ConsumerOptions
    let logger: Logger
    let reporter: ConsumerReporter

    init(core: ConsumerCore, reporter: ConsumerReporter, logger: Logger) {
        self.core = core
        self.options = core.options
        self.reporter = reporter
        self.logger = logger
    }

    func run(archive path: String, partitionCount: Int, stop: StopSignal) throws {
        try core.start()
        core.historyGap = .notInArchive
        // One process reads the whole archive: the engine covers whichever partitions it had seen.
        core.adoptAlertState(for: nil)
        // Metrics stay current while a checkpoint is retried (an unwritable state directory).
        core.whileRetrying = { [core, reporter] in reporter.report(core, rate: 0, consumer: nil) }
        defer { core.whileRetrying = nil }
        let started = ContinuousClock.now
        let sinks = reporter.sinks
        // Batches no larger than a checkpoint's worth of events, so checkpoints come as often as on the Kafka path.
        let batchSize = max(1, min(options.pollBatch, options.checkpointEvents))
        var batch: [KafkaMessage] = []
        batch.reserveCapacity(batchSize)
        var reader = try ArchiveReader(path: path)
        reader.allowTruncated = options.allowTruncatedArchive
        var progress = Progress(fileSize: reader.fileSize, started: started)
        // `--until`: every record up to that time is applied, in whatever order the file holds them; a record
        // after it is counted and left out, and its topic-partition's checkpoints stay at the first such record
        // (`ConsumerCore.hold`), so that a later run without `--until` reads on from there. The records up to the
        // time it reads again are duplicates: not counted twice (the marts are exact under duplication).
        func applyBatch() throws {
            let outputs = core.apply(batch, startMs: options.startTime?.ms)
            try core.send(outputs, to: sinks)
            batch.removeAll(keepingCapacity: true)
            if core.checkpointDueByCount { core.checkpointAll(sinks: sinks, stop: stop) }
            reportIfDue(&progress)
        }
        var cutOff: ArchiveError?
        let blocks = ParsedBlocks(reader.blocks(), threads: options.threads, partitionCount: partitionCount)
        defer { blocks.cancel() }
        // Per topic and partition, the next position and the first offset not yet in the checkpoint (-1: the
        // partition is not open yet): tables, not dictionaries, since each line looks both up.
        var next = OffsetTable(), fresh = OffsetTable()
        var readARecord = false
        reading: while let item = blocks.next() {
            let block: ArchiveReader.Block, parts: [ParsedPart]
            switch item {
            case let .parsed(b, p): (block, parts) = (b, p)
            case let .failed(e) where e.truncated:
                cutOff = e  // every complete line is applied; the run ends with this error
                break reading
            case let .failed(e):
                logger.warning("\(e)")
                core.summary.rejected += 1
                break reading
            }
            progress.readThrough = block.fileOffset
            // Also here: a resumed replay skips what its checkpoints hold without applying a batch.
            reportIfDue(&progress)
            for part in parts {
                // The part's few topic names looked up once: each line holds an index into them.
                let topics = part.topicNames.map { archived in
                    let topic = core.inputTopic(named: archived) ?? InputTopic(rawValue: archived)
                    return (name: topic.flatMap { options.topics[$0] }, ordinal: topic?.ordinal ?? 0)
                }
                for k in part.lines.indices {
                    if stop.isStopped { break reading }
                    let line = part.lines[k]
                    switch line.kind {
                    case .empty: continue
                    case .failed where !readARecord && reader.isStream:
                        // (A file was checked before the run; a stream cannot be without losing what was read.)
                        let n = block.firstLineNumber + part.firstLine + k
                        throw ArchiveError.notAnArchive(path, firstRecord: "archive line \(n): \(part.errors[k].map { "\($0)" } ?? "")")
                    case .failed:
                        logger.warning("archive line \(block.firstLineNumber + part.firstLine + k): \(part.errors[k].map { "\($0)" } ?? "")")
                        core.summary.rejected += 1
                        continue
                    case .record: readARecord = true
                    }
                    let topic = topics[Int(line.topic)]
                    guard let name = topic.name else { continue }
                    let p = line.partition, t = topic.ordinal
                    if fresh[t, p] < 0 {
                        if core.partitions[p] == nil { try core.open([p]) }
                        for topic in InputTopic.allCases {
                            fresh[topic.ordinal, p] = options.topics[topic].flatMap { core.nextOffset(TopicPartition($0, p)) } ?? 0
                        }
                    }
                    let offset = line.offset != ParsedLine.noOffset ? line.offset : max(next[t, p], 0)
                    next[t, p] = offset + 1
                    if offset < fresh[t, p] { continue }  // already in the checkpoint
                    if let until = options.until, line.timestampMs != ParsedLine.noTimestamp, line.timestampMs > until.ms {
                        core.hold(TopicPartition(name, p), at: offset)
                        core.summary.skippedAfterUntil += 1
                        continue
                    }
                    batch.append(KafkaMessage(topic: name, partition: p, offset: offset, key: line.key.map { part.bytes[$0] },
                                              value: part.bytes[line.value],
                                              timestampMs: line.timestampMs == ParsedLine.noTimestamp ? nil : line.timestampMs))
                    if batch.count >= batchSize { try applyBatch() }
                }
            }
        }
        try applyBatch()
        core.checkpointAll(sinks: sinks, stop: stop)
        core.release()
        reporter.report(core, rate: 0, consumer: nil)
        core.summary.seconds = (ContinuousClock.now - started).seconds
        if blocks.truncated && options.allowTruncatedArchive {
            logger.warning("archive \(path) ends early (its gzip stream is cut off): its complete lines were used (--allow-truncated)")
        }
        if let cutOff { throw cutOff }
    }

    /// Where a replay is, for its progress reports.
    struct Progress {
        let fileSize: Int64?
        let started: ContinuousClock.Instant
        /// How far into the file the block being applied reaches.
        var readThrough: Int64 = 0
        var lastReport: ContinuousClock.Instant
        var reportedTaken = 0

        init(fileSize: Int64?, started: ContinuousClock.Instant) {
            self.fileSize = fileSize
            self.started = started
            lastReport = started
        }

        /// The share of the file applied so far, in 0...1 (nil when the file's size is unknown).
        var fraction: Double? {
            guard let fileSize, fileSize > 0 else { return nil }
            return min(1, Double(readThrough) / Double(fileSize))
        }

        /// Seconds left at the pace so far, once a part of the file is behind.
        func remainingSeconds(now: ContinuousClock.Instant) -> Double? {
            guard let f = fraction, f >= 0.001 else { return nil }
            return (now - started).seconds * (1 - f) / f
        }
    }

    /// Every `reportInterval`: refreshes the metrics (snapshot, registry, metrics file) and logs where the replay
    /// is, as the Kafka driver does: a long replay shows its progress and its metrics stay current.
    private func reportIfDue(_ progress: inout Progress) {
        let now = ContinuousClock.now
        guard now - progress.lastReport >= options.reportInterval else { return }
        let taken = core.summary.taken
        let m = reporter.report(core, rate: Double(taken - progress.reportedTaken) / max((now - progress.lastReport).seconds, 1e-9), consumer: nil)
        var metadata = m.progressMetadata
        if let f = progress.fraction { metadata[LogKey.archiveRead] = "\(Int(f * 100))%" }
        if let left = progress.remainingSeconds(now: now) { metadata[LogKey.archiveRemainingSeconds] = "\(Int(left.rounded()))" }
        logger.info("replaying", metadata: metadata)
        progress.lastReport = now
        progress.reportedTaken = taken
    }

    /// The archive's blocks, read and parsed (`parse`) on a thread of their own in file order, up to
    /// `blocksAhead` ahead of the one being applied, so reading, parsing and finding each line's partition stay
    /// off the thread that applies and both cores keep busy through the serial parts of a batch.
    final class ParsedBlocks: @unchecked Sendable {
        // `@unchecked Sendable`: `ready`, `ended`, `cancelled` and `sawTruncation` are touched only under
        // `condition`'s lock; `blocks` only by the reading thread (after `init`).
        enum Item {
            case parsed(ArchiveReader.Block, [ParsedPart])
            case failed(ArchiveError)
        }
        private let condition = NSCondition()
        private var ready: [Item] = []
        private var ended = false
        private var cancelled = false
        private var sawTruncation = false
        private var blocks: ArchiveReader.Blocks

        init(_ blocks: ArchiveReader.Blocks, threads: Int, partitionCount: Int) {
            self.blocks = blocks
            let thread = Thread { [self] in read(threads: threads, partitionCount: partitionCount) }
            thread.name = "archive-reader"
            thread.start()
        }

        private func read(threads: Int, partitionCount: Int) {
            while true {
                condition.lock()
                while ready.count >= ArchiveDriver.blocksAhead && !cancelled { condition.wait() }
                let stop = cancelled
                condition.unlock()
                if stop { break }
                let item: Item? = switch blocks.next() {
                case nil: nil
                case let .success(block)?: .parsed(block, ArchiveDriver.parse(block, threads: threads, partitionCount: partitionCount))
                case let .failure(e)?: .failed(e)
                }
                condition.lock()
                if let item { ready.append(item) }
                sawTruncation = blocks.truncated
                let last: Bool
                if case .parsed? = item { last = false } else { last = true }  // the end, or an error that ends it
                if last { ended = true }
                condition.broadcast()
                condition.unlock()
                if last { break }
            }
        }

        /// The next block in file order (waiting for it), or nil after the last or once cancelled.
        func next() -> Item? {
            condition.lock()
            defer { condition.unlock() }
            while ready.isEmpty && !ended && !cancelled { condition.wait() }
            guard !cancelled, !ready.isEmpty else { return nil }
            condition.broadcast()
            return ready.removeFirst()
        }

        /// Ends the reading thread (the blocks not taken are dropped).
        func cancel() {
            condition.lock()
            cancelled = true
            condition.broadcast()
            condition.unlock()
        }

        /// How many parsed blocks wait to be taken.
        var buffered: Int { condition.withLock { ready.count } }

        /// Whether the archive ended early (its gzip stream cut off), as far as read.
        var truncated: Bool { condition.withLock { sawTruncation } }
    }

    /// How many blocks are read and parsed ahead of the one being applied. With one, the driver waited for
    /// parsing 8% of the run (BENCHMARKS.md).
    static let blocksAhead = 4

    /// A block's lines parsed on up to `threads` threads, each a contiguous part into a buffer of its own (the
    /// keys and values, escapes resolved): no allocation per line, and the parts come back in order. With
    /// each line, its partition: the archived one, or the key's under the producers' partitioner.
    struct ParsedPart: @unchecked Sendable {
        var bytes: [UInt8] = []
        var lines: [ParsedLine] = []
        /// Why each line that is not a record was refused, by its index in `lines`.
        var errors: [Int: ArchiveLineError] = [:]
        /// The topic names of the part's records (`ParsedLine.topic` indexes them): a handful.
        var topicNames: [String] = []
        var firstLine = 0
    }

    /// A line of a block as the driver needs it, with no reference in it (the applying thread copies these
    /// without retaining or releasing anything): its topic as an index into its part's names, its partition
    /// (the archived one, or the key's under the producers' partitioner), where its key and value are in the
    /// part's buffer.
    struct ParsedLine {
        enum Kind: UInt8 { case record, empty, failed }
        static let noTimestamp = Int64.min
        static let noOffset = Int64.min
        var kind: Kind
        var topic: Int32 = 0
        var partition: Int32 = 0
        /// `noOffset` when the line has none.
        var offset = noOffset
        /// `noTimestamp` when the line has none.
        var timestampMs = noTimestamp
        var key: Range<Int>?
        var value: Range<Int> = 0..<0
    }

    static func parse(_ block: ArchiveReader.Block, threads: Int, partitionCount: Int) -> [ParsedPart] {
        let count = block.lines.count
        let parts = max(1, min(threads, count / 1024))
        final class Results: @unchecked Sendable {  // each slot written by one thread, read after all finished
            var parts: [ParsedPart]
            init(_ n: Int) { parts = Array(repeating: ParsedPart(), count: n) }
        }
        let results = Results(parts)
        let work: @Sendable (Int) -> Void = { k in
            let range = (count * k / parts)..<(count * (k + 1) / parts)
            var part = ParsedPart(firstLine: range.lowerBound)
            // Room made once for every key and value of the part's lines (none is longer than its line), written
            // from `used` on, then cut to what was written.
            let span = range.isEmpty ? 0 : block.lines[range.upperBound - 1].upperBound - block.lines[range.lowerBound].lowerBound
            part.bytes = Array(repeating: 0, count: span + ArchiveRecord.wordSlack)
            var used = 0
            part.lines.reserveCapacity(range.count)
            for i in range {
                let line = block.lines[i]
                if line.isEmpty {
                    part.lines.append(ParsedLine(kind: .empty))
                    continue
                }
                switch ArchiveRecord.parse(line: block.bytes[line], into: &part.bytes, at: &used) {
                case let .success(l):
                    let p = l.partition ?? Int32(Murmur2.partition(for: l.key.map { part.bytes[$0] } ?? [], partitionCount: partitionCount))
                    var topic = part.topicNames.firstIndex(of: l.topic) ?? -1
                    if topic < 0 {
                        topic = part.topicNames.count
                        part.topicNames.append(l.topic)
                    }
                    part.lines.append(ParsedLine(kind: .record, topic: Int32(topic), partition: p, offset: l.offset ?? ParsedLine.noOffset,
                                                 timestampMs: l.timestampMs ?? ParsedLine.noTimestamp, key: l.key, value: l.value))
                case let .failure(e):
                    part.errors[part.lines.count] = e
                    part.lines.append(ParsedLine(kind: .failed))
                }
            }
            part.bytes.removeLast(part.bytes.count - used)
            results.parts[k] = part
        }
        if parts == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: work) }
        return results.parts
    }
}

/// Offsets by topic ordinal and partition number, -1 where none was set.
struct OffsetTable {
    private var rows = Array(repeating: PartitionTable<Int64>(empty: -1), count: InputTopic.allCases.count)

    subscript(topic: Int, partition: Int32) -> Int64 {
        get { rows[topic][partition] }
        set { rows[topic][partition] = newValue }
    }
}
