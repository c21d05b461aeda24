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
        // One process reads the whole archive: the engine covers whichever partitions it had seen.
        core.adoptAlertState(for: nil)
        let started = ContinuousClock.now
        let sinks = reporter.alertSinks
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
        for item in try ArchiveReader(path: path) {
            if stop.isStopped { break }
            let record: ArchiveRecord
            switch item {
            case let .success(r): record = r
            case let .failure(e):
                logger.warning("\(e)")
                core.summary.rejected += 1
                continue
            }
            if let until = options.until, let t = record.timestamp, t > until { break }
            guard let topic = core.topicOf[record.topic] ?? InputTopic(rawValue: record.topic), let name = options.topics[topic] else { continue }
            let p = record.partition ?? Int32(Murmur2.partition(for: record.key ?? [], partitionCount: partitionCount))
            let tp = TopicPartition(name, p)
            if core.partitions[p] == nil { try core.open([p]) }
            let offset = record.offset ?? positions[tp, default: 0]
            positions[tp] = offset + 1
            if offset < core.nextOffset(tp) ?? 0 { continue }  // already in the checkpoint
            batch.append(KafkaMessage(topic: name, partition: p, offset: offset, key: record.key.map { $0[...] },
                                      value: record.value[...], timestampMs: record.timestamp?.ms))
            if batch.count >= batchSize { try applyBatch() }
        }
        try applyBatch()
        core.checkpointAll(sinks: sinks, stop: stop)
        core.release()
        reporter.report(core, rate: 0, consumer: nil)
        core.summary.seconds = (ContinuousClock.now - started).seconds
    }
}
