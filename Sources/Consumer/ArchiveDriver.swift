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
        let started = ContinuousClock.now
        let sinks = reporter.sinks
        var positions: [TopicPartition: Int64] = [:]
        // Batches no larger than a checkpoint's worth of events, so checkpoints come as often as on the Kafka path.
        let batchSize = max(1, min(options.pollBatch, options.checkpointEvents))
        var batch: [KafkaMessage] = []
        batch.reserveCapacity(batchSize)
        func applyBatch() throws {
            let outputs = core.apply(batch)
            for sink in sinks { try sink.send(outputs) }
            batch.removeAll(keepingCapacity: true)
            if core.checkpointDueByCount { core.checkpointAll(sinks: sinks, stop: stop) }
        }
        var lastTopic: (archived: String, name: String?) = ("", nil)
        var reader = try ArchiveReader(path: path)
        reader.allowTruncated = options.allowTruncatedArchive
        var blocks = reader.blocks()
        var cutOff: ArchiveError?
        let threads = options.threads
        /// The next block, its lines being parsed on other threads while this one applies the block before it.
        func nextBlock() -> ParsingBlock? {
            switch blocks.next() {
            case nil: return nil
            case let .success(block)?: return ParsingBlock(block, threads: threads)
            case let .failure(e)? where e.truncated:
                cutOff = e  // every complete line is applied; the run ends with this error
                return nil
            case let .failure(e)?:
                logger.warning("\(e)")
                core.summary.rejected += 1
                return nil
            }
        }
        var next = nextBlock()
        reading: while let parsing = next {
            let (block, parts) = parsing.result()
            next = nextBlock()
            for part in parts {
                for (k, parsed) in part.lines.enumerated() {
                    if stop.isStopped { break reading }
                    let line: ArchiveLine
                    switch parsed {
                    case nil: continue  // an empty line
                    case let .success(l)?: line = l
                    case let .failure(e)?:
                        logger.warning("archive line \(block.firstLineNumber + part.firstLine + k): \(e)")
                        core.summary.rejected += 1
                        continue
                    }
                    if let until = options.until, let t = line.timestampMs, t > until.ms { break reading }
                    // Lines come in runs of few topics: the name is looked up when it differs from the previous line's.
                    if line.topic != lastTopic.archived {
                        let topic = core.topicOf[line.topic] ?? InputTopic(rawValue: line.topic)
                        lastTopic = (line.topic, topic.flatMap { options.topics[$0] })
                    }
                    guard let name = lastTopic.name else { continue }
                    let key = line.key.map { part.bytes[$0] }
                    let p = line.partition ?? Int32(Murmur2.partition(for: key ?? [], partitionCount: partitionCount))
                    let tp = TopicPartition(name, p)
                    if core.partitions[p] == nil { try core.open([p]) }
                    let offset = line.offset ?? positions[tp, default: 0]
                    positions[tp] = offset + 1
                    if offset < core.nextOffset(tp) ?? 0 { continue }  // already in the checkpoint
                    batch.append(KafkaMessage(topic: name, partition: p, offset: offset, key: key, value: part.bytes[line.value],
                                              timestampMs: line.timestampMs))
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

    /// A block whose lines are parsed (`parse`) in the background from the moment it is read: `result()` waits
    /// for them. Reading and parsing the next block while the lanes apply this one keeps both cores busy through
    /// the serial parts of a batch.
    final class ParsingBlock: @unchecked Sendable {
        // `@unchecked Sendable`: `parts` is written once by the parsing thread before `done` opens, and read only
        // after it has.
        private let block: ArchiveReader.Block
        private var parts: [ParsedPart] = []
        private let done = Latch()

        init(_ block: ArchiveReader.Block, threads: Int) {
            self.block = block
            DispatchQueue.global().async { [self] in
                parts = ArchiveDriver.parse(block, threads: threads)
                done.open()
            }
        }

        func result() -> (ArchiveReader.Block, [ParsedPart]) {
            done.wait()
            return (block, parts)
        }
    }

    /// A block's lines parsed on up to `threads` threads, each a contiguous part into a buffer of its own (the
    /// keys and values, escapes resolved): no allocation per line, and the parts come back in order.
    struct ParsedPart: @unchecked Sendable {
        var bytes: [UInt8] = []
        var lines: [Result<ArchiveLine, ArchiveLineError>?] = []
        var firstLine = 0
    }

    static func parse(_ block: ArchiveReader.Block, threads: Int) -> [ParsedPart] {
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
            part.bytes.reserveCapacity(block.bytes.count / parts)
            part.lines.reserveCapacity(range.count)
            for i in range {
                let line = block.lines[i]
                part.lines.append(line.isEmpty ? nil : ArchiveRecord.parse(line: block.bytes[line], into: &part.bytes))
            }
            results.parts[k] = part
        }
        if parts == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: work) }
        return results.parts
    }
}
