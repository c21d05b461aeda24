import Checkpoints
import Config
import Consumer
import Events
import Foundation
import Kafka
import Marts
import Simulation
import Synchronization
import Testing
import TestSupport

/// Records what it is sent and when it was flushed, relative to the storage's writes.
final class RecordingSink: ConsumerSink, @unchecked Sendable {
    var outputs: [ConsumerOutput] = []
    var flushedAtWrites: [Int] = []
    let storage: MemoryCheckpointStorage
    init(_ storage: MemoryCheckpointStorage) { self.storage = storage }
    func send(_ outputs: [ConsumerOutput]) throws { self.outputs += outputs }
    func flush() throws { flushedAtWrites.append(storage.writes) }
}

func core(_ storage: MemoryCheckpointStorage, threads: Int = 2, configure: (inout ConsumerOptions) -> Void = { _ in }) throws -> ConsumerCore {
    var options = ConsumerOptions(stateDirectory: URL(fileURLWithPath: "/nonexistent"))
    options.threads = threads
    configure(&options)
    let c = ConsumerCore(options: options, storage: storage, logger: quiet)
    try c.start()
    try c.open([0, 1, 2, 3])
    return c
}

/// The marts of every open partition of `core`'s storage, merged.
func marts(_ storage: MemoryCheckpointStorage) -> [MartTable] { export(storage.partitions.values.map(\.state)) }

let input = messages(history)
let reference = export([martState(history)])

/// The core without Kafka or files: batches, duplicates, threads, checkpoints, restores, failures.
@Suite struct ConsumerCoreTests {
    @Test(arguments: [(1, UInt64(1)), (2, 2), (2, 3)])
    func anyBatchingAndThreadCountGivesTheBatchMarts(threads: Int, seed: UInt64) throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage, threads: threads)
        var rng = Xoshiro(seed: seed)
        var i = 0
        var resent = 0
        while i < input.count {
            let n = Int(rng.next() % 3000) + 1
            var batch = Array(input[i..<min(i + n, input.count)])
            // The same message delivered again (a redelivery): counted as a duplicate, changing no mart.
            if let m = batch.last, rng.next() % 2 == 0 {
                batch.append(KafkaMessage(topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value, timestampMs: m.timestampMs))
                resent += 1
            }
            _ = c.apply(batch)
            i += n
        }
        #expect(c.checkpointAll(sinks: [], stop: nil))
        #expect(c.summary.accepted == history.count)
        #expect(c.summary.duplicates == resent)
        #expect(c.summary.rejected == 0)
        #expect(c.progress == history.count + resent)
        #expect(marts(storage) == reference)
    }

    /// Messages of other topics, or of partitions not open, are passed over, even when they are all a
    /// partition has in a batch, and the rest give the batch marts.
    @Test func messagesOfOtherTopicsOrClosedPartitionsArePassedOver() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        let stray = (0..<300).map { (i: Int) -> KafkaMessage in
            let other = i % 2 == 0
            let topic = other ? "not-an-input" : "billing"
            let partition: Int32 = other ? 2 : 9
            return KafkaMessage(topic: topic, partition: partition, offset: Int64(i), key: Array("cus_x".utf8)[...], value: Array("{}".utf8)[...])
        }
        let others = input.filter { $0.partition != 2 }
        _ = c.apply(stray + others.prefix(5000))
        _ = c.apply(Array(others.dropFirst(5000)) + input.filter { $0.partition == 2 })
        #expect(c.checkpointAll(sinks: [], stop: nil))
        #expect(c.summary.accepted == history.count)
        #expect(c.summary.rejected == 0)
        #expect(marts(storage) == reference)
    }

    @Test func rejectedMessagesBecomeDeadLettersInMessageOrder() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        let good = Array(input.prefix(200))
        let bad = KafkaMessage(topic: "billing", partition: 1, offset: 10_000, key: Array("cus_x".utf8)[...],
                               value: Array("{\"schema\":2}".utf8)[...], timestampMs: nil)
        let outputs = c.apply(good + [bad] + Array(input[200..<400]))
        let letters = outputs.compactMap { o -> KafkaMessage? in if case let .deadLetter(_, m) = o { m } else { nil } }
        #expect(letters.map(\.offset) == [10_000])
        #expect(c.summary.rejected == 1 && c.summary.accepted == 400)
        // Risk changes come out as values too, one per change the accepted events caused.
        let risk = outputs.filter { if case .riskChange = $0 { true } else { false } }.count
        #expect(risk == c.summary.riskChanges && risk > 0)
    }

    @Test func aRestoredCoreResumesWhereItsCheckpointStopped() throws {
        let storage = MemoryCheckpointStorage()
        let first = try core(storage)
        let half = input.count / 2
        _ = first.apply(Array(input[..<half]))
        #expect(first.checkpointAll(sinks: [], stop: nil))
        // Not checkpointed: lost with the process, and applied again by the next one.
        _ = first.apply(Array(input[half..<(half + 500)]))

        let second = try core(storage)
        let resumeAt = input.filter { m in second.nextOffset(m.topicPartition).map { m.offset >= $0 } ?? true }
        #expect(resumeAt.count == input.count - half)
        _ = second.apply(resumeAt)
        #expect(second.checkpointAll(sinks: [], stop: nil))
        #expect(marts(storage) == reference)
        #expect(MartSnapshot(storage.partitions.values.map(\.state)).accepted == history.count)
    }

    /// `until`: exactly the events up to it count, and each topic-partition's checkpoints stay at its first
    /// message after it, also when messages up to the time come behind that one (the history shuffled, so each
    /// partition's messages are out of time order). A core without `until` resumed from those checkpoints then
    /// applies the rest: the marts of the whole history, what it reads again counted as duplicates, never twice.
    @Test(arguments: [UInt64(1), 2])
    func untilHoldsEachCheckpointAtItsPartitionsFirstMessageAfterIt(seed: UInt64) throws {
        var rng = Xoshiro(seed: seed)
        let shuffled = history.shuffled(using: &rng)
        let all = messages(shuffled)
        let until = history[history.count * 2 / 3].occurredAt
        let upTo = shuffled.filter { $0.occurredAt <= until }
        var firstAfter: [TopicPartition: Int64] = [:], ends: [TopicPartition: Int64] = [:]
        for (m, e) in zip(all, shuffled) {
            ends[m.topicPartition] = m.offset + 1
            if e.occurredAt > until, firstAfter[m.topicPartition] == nil { firstAfter[m.topicPartition] = m.offset }
        }
        #expect(firstAfter.count == ends.count)

        let storage = MemoryCheckpointStorage()
        let first = try core(storage) { $0.until = until; $0.checkpointEvents = 700 }
        var i = 0
        while i < all.count {
            let n = Int(rng.next() % 2000) + 1
            _ = first.apply(Array(all[i..<min(i + n, all.count)]))
            if first.checkpointDueByCount { #expect(first.checkpointAll(sinks: [], stop: nil)) }
            i += n
        }
        #expect(first.checkpointAll(sinks: [], stop: nil))
        #expect(first.summary.accepted == upTo.count)
        #expect(first.summary.skippedAfterUntil == history.count - upTo.count)
        #expect(marts(storage) == export([martState(upTo)]))
        var held: [TopicPartition: Int64] = [:]
        for (p, c) in storage.partitions { for (topic, o) in c.offsets { held[TopicPartition(topic, p)] = o } }
        #expect(held == firstAfter)
        #expect(firstAfter.keys.allSatisfy { first.isPastUntil($0) })
        // The next offset to read is past everything read: only the checkpoints are held.
        #expect(ends.allSatisfy { first.nextOffset($0.key) == $0.value })

        let rest = try core(storage)
        let again = all.filter { m in rest.nextOffset(m.topicPartition).map { m.offset >= $0 } ?? true }
        _ = rest.apply(again)
        #expect(rest.checkpointAll(sinks: [], stop: nil))
        #expect(rest.summary.accepted == history.count - upTo.count)
        #expect(rest.summary.duplicates == again.count - rest.summary.accepted)
        #expect(rest.summary.duplicates > 0)
        #expect(marts(storage) == reference)
        var end: [TopicPartition: Int64] = [:]
        for (p, c) in storage.partitions { for (topic, o) in c.offsets { end[TopicPartition(topic, p)] = o } }
        #expect(end == ends)
    }

    @Test func sinksFlushBeforeEveryCheckpointWrite() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage) { $0.checkpointEvents = 1000 }
        let sink = RecordingSink(storage)
        var writesAfterEach: [Int] = []
        var i = 0
        while i < 6000 {
            _ = c.apply(Array(input[i..<(i + 500)]))
            if c.checkpointDueByCount {
                c.checkpointAll(sinks: [sink], stop: nil)
                writesAfterEach.append(storage.writes)
            }
            i += 500
        }
        #expect(writesAfterEach.count >= 2)
        // Each checkpoint's flush saw only the writes of the checkpoints before it.
        #expect(sink.flushedAtWrites == [0] + writesAfterEach.dropLast())
        #expect(storage.writes > 0 && c.summary.checkpoints == storage.writes)
    }

    @Test func aFailingCheckpointIsRetriedUntilWrittenAndCounted() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        _ = c.apply(Array(input.prefix(1000)))
        storage.failingWrites = 2
        #expect(c.checkpointAll(sinks: [], stop: StopSignal(handleSignals: false)))
        #expect(c.checkpointFailures == 2)
        #expect(storage.partitions.values.reduce(0) { $0 + $1.state.accepted } == 1000)
    }

    @Test func aStoppedCoreGivesUpAFailingCheckpointWithoutMovingOffsets() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        _ = c.apply(Array(input.prefix(1000)))
        storage.failingWrites = 1_000
        let stop = StopSignal(handleSignals: false)
        stop.stop()
        #expect(!c.checkpointAll(sinks: [], stop: stop))
        #expect(storage.partitions.isEmpty)
    }

    /// Outputs a sink did not take are gone from the core's hands: no checkpoint may cover their batch, neither the
    /// next one nor a rebalance's close. The other sinks are not handed that batch's outputs either.
    @Test func afterASinkFailedToTakeOutputsNoCheckpointIsTaken() throws {
        struct Refused: Error {}
        final class RefusingSink: ConsumerSink, @unchecked Sendable {
            func send(_ outputs: [ConsumerOutput]) throws { if !outputs.isEmpty { throw Refused() } }
        }
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        let recorder = RecordingSink(storage)
        try c.send(c.apply(Array(input.prefix(1000))), to: [recorder])
        let taken = recorder.outputs.count
        #expect(c.checkpointAll(sinks: [recorder], stop: nil))
        let written = storage.writes
        #expect(written > 0 && c.fatalSinkError == nil)
        let outputs = c.apply(Array(input[1000..<4000]))
        #expect(!outputs.isEmpty)
        #expect(throws: Refused.self) { try c.send(outputs, to: [RefusingSink(), recorder]) }
        #expect(c.fatalSinkError is Refused)
        #expect(!c.checkpointAll(sinks: [recorder], stop: nil))
        c.close(Set(c.openPartitions), sinks: [recorder], stop: nil)
        #expect(storage.writes == written)
        #expect(storage.partitions.values.reduce(0) { $0 + $1.state.accepted } == 1000)
        #expect(recorder.outputs.count == taken)
    }

    @Test func checkpointIsDueOnceAPartitionTookCheckpointEvents() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage) { $0.checkpointEvents = 300 }
        let p0 = input.filter { $0.partition == 0 }
        _ = c.apply(Array(p0.prefix(299)))
        #expect(!c.checkpointDueByCount)
        _ = c.apply(Array(p0[299..<300]))
        #expect(c.checkpointDueByCount)
        c.checkpointAll(sinks: [], stop: nil)
        #expect(!c.checkpointDueByCount)
    }

    @Test func alertsComeOutOnceAndTheEngineResumesFromItsCheckpoint() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let events = spikeEvents()
        let sources = messages(events)
        var engine = AlertEngine(rules: rules)
        var expected: [Alert] = []
        for (e, m) in zip(events, sources) { expected += engine.observe(e, source: Int(m.partition)) }
        #expect(expected.contains { $0.state == .firing })

        // Uninterrupted, and in two runs with a checkpoint between them: the same alerts, each raised once.
        let whole = try core(MemoryCheckpointStorage()) { $0.alertRules = rules }
        whole.adoptAlertState(for: nil)
        let raised = whole.apply(sources).compactMap { o -> Alert? in if case let .alert(a) = o { a } else { nil } }
        #expect(raised == expected && raised == whole.alerts)

        let split = MemoryCheckpointStorage()
        let first = try core(split) { $0.alertRules = rules }
        first.adoptAlertState(for: nil)
        let cut = sources.count * 3 / 4  // inside the spike
        _ = first.apply(Array(sources[..<cut]))
        first.checkpointAll(sinks: [], stop: nil)
        let second = try core(split) { $0.alertRules = rules }
        second.adoptAlertState(for: nil)
        _ = second.apply(Array(sources[cut...]))
        #expect(first.alerts + second.alerts == expected)
        // What the detector says it can catch comes from the engine, and a restored engine says the same.
        let reach = whole.detectionReach(outageRate: 0.5)
        #expect(reach == engine.detectionReach(outageRate: 0.5) && reach == second.detectionReach(outageRate: 0.5))
        #expect((reach.first { $0.scope == "overall" }?.attemptsPerHour ?? 0) > 0)
    }

    /// Checkpoints of other input topics (a replayed history's consumer, `--topic-prefix replay.`, pointed at the live
    /// consumer's state): refused as another consumer's, neither used nor written over; a consumer of the same topics
    /// resumes from them.
    @Test func checkpointsOfOtherTopicsAreAnotherConsumersAndLeftAlone() throws {
        let storage = MemoryCheckpointStorage()
        let live = try core(storage)
        _ = live.apply(Array(input.prefix(2000)))
        #expect(live.checkpointAll(sinks: [], stop: nil))
        let writes = storage.writes, stored = marts(storage)

        var options = ConsumerOptions(stateDirectory: URL(fileURLWithPath: "/nonexistent"))
        options.topics = Topics.inputs(prefixedBy: "replay.")
        let replay = ConsumerCore(options: options, storage: storage, logger: quiet)
        try replay.start()
        #expect {
            try replay.open([0, 1, 2, 3])
        } throws: { e in
            let e = e as! CheckpointError
            return e.kind == .anotherConsumers && e.description.hasPrefix("checkpoint of partition 0 is another consumer's: memory: it is of topics ")
                && e.problem.hasSuffix("and this consumer reads replay.billing, replay.engagement, replay.payments")
        }
        #expect(replay.openPartitions.isEmpty)
        #expect(replay.checkpointAll(sinks: [], stop: nil))
        #expect(storage.writes == writes && marts(storage) == stored)

        let again = ConsumerCore(options: ConsumerOptions(stateDirectory: URL(fileURLWithPath: "/nonexistent")), storage: storage, logger: quiet)
        try again.start()
        try again.open([0, 1, 2, 3])
        #expect(again.openPartitions == [0, 1, 2, 3])
    }
}

/// A restore at any checkpoint, anywhere in a spike, raises exactly the uninterrupted run's alerts.
@Suite struct AlertRestoreTests {
    @Test func aRestoreAtAnyCheckpointRaisesTheUninterruptedAlerts() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let events = spikeEvents()
        let sources = messages(events)
        let whole = try core(MemoryCheckpointStorage()) { $0.alertRules = rules }
        whole.adoptAlertState(for: nil)
        _ = whole.apply(sources)
        let expected = whole.alerts
        #expect(expected.count >= 2)
        let spike = 2 * 24 * 60 * 6
        var failures: [Int] = []
        for cut in stride(from: spike - 600, to: spike + 4 * 60 * 6 - 100, by: 97) {
            let storage = MemoryCheckpointStorage()
            let first = try core(storage) { $0.alertRules = rules }
            first.adoptAlertState(for: nil)
            _ = first.apply(Array(sources[..<cut]))
            first.checkpointAll(sinks: [], stop: nil)
            let second = try core(storage) { $0.alertRules = rules }
            second.adoptAlertState(for: nil)
            _ = second.apply(Array(sources[cut...]))
            if first.alerts + second.alerts != expected { failures.append(cut) }
        }
        #expect(failures.isEmpty, "restores at \(failures) changed the alerts")
    }
}

extension AlertRestoreTests {
    /// A crash part-way through a checkpoint: the engine's state and some partitions are written, the other
    /// partitions keep their previous checkpoint and resume from older offsets.
    @Test func aCheckpointCutShortRaisesTheUninterruptedAlerts() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let sources = messages(spikeEvents())
        let whole = try core(MemoryCheckpointStorage()) { $0.alertRules = rules }
        whole.adoptAlertState(for: nil)
        _ = whole.apply(sources)
        let spike = 2 * 24 * 60 * 6
        var failures: [String] = []
        for (cut, failing) in [(spike - 300, Int32(0)), (spike + 100, 1), (spike + 400, 2), (spike + 700, 3), (spike + 1000, 1)] {
            let storage = MemoryCheckpointStorage()
            let first = try core(storage) { $0.alertRules = rules }
            first.adoptAlertState(for: nil)
            _ = first.apply(Array(sources[..<(cut - 250)]))
            first.checkpointAll(sinks: [], stop: nil)
            _ = first.apply(Array(sources[(cut - 250)..<cut]))
            storage.failingPartitions = [failing]
            let stopped = StopSignal(handleSignals: false)
            stopped.stop()
            #expect(!first.checkpointAll(sinks: [], stop: stopped))
            storage.failingPartitions = []
            // The next run checkpoints again soon, before the partition left behind has caught up with the
            // engine, and crashes: the engine must not forget what it had seen of that partition.
            let second = try core(storage) { $0.alertRules = rules }
            second.adoptAlertState(for: nil)
            let rest = sources.filter { m in second.nextOffset(m.topicPartition).map { m.offset >= $0 } ?? true }
            _ = second.apply(Array(rest.prefix(20)))
            #expect(second.checkpointAll(sinks: [], stop: nil))
            let third = try core(storage) { $0.alertRules = rules }
            third.adoptAlertState(for: nil)
            _ = third.apply(sources.filter { m in third.nextOffset(m.topicPartition).map { m.offset >= $0 } ?? true })
            // Alerts raised between two checkpoints are raised again (at least once); each transition once.
            var seen = Set<String>()
            let got = (first.alerts + second.alerts + third.alerts).filter { seen.insert($0.json).inserted }
            if got != whole.alerts { failures.append("cut \(cut), partition \(failing) not written") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }
}

/// Where each topic-partition's history starts: recorded from its first message, kept with the checkpoints,
/// never recorded again for a partition that resumes.
@Suite struct HistoryStartTests {
    @Test func aPartitionWhoseFirstMessagesAreGoneIsPartialAndStaysSoAcrossARestart() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage)
        // Partition 0's payments begin at offset 500 (the broker deleted 0-499); the rest begin at 0.
        let shifted = input.map { m -> KafkaMessage in
            guard m.partition == 0 && m.topic == "payments" else { return m }
            return KafkaMessage(topic: m.topic, partition: m.partition, offset: m.offset + 500, key: m.key, value: m.value, timestampMs: m.timestampMs)
        }
        _ = c.apply(shifted)
        let partial = c.history.filter(\.isPartial)
        #expect(partial.count == 1)
        let start = try #require(partial.first)
        #expect(start.topic == "payments" && start.partition == 0 && start.firstOffset == 500 && start.missedMessages == 500 && start.gap == .deleted)
        #expect(start.firstTimestampMs == shifted.first { $0.topic == "payments" && $0.partition == 0 }?.timestampMs)
        #expect(c.history.filter { !$0.isPartial }.allSatisfy { $0.firstOffset == 0 && $0.gap == nil })
        #expect(HistoryStart.summaries(c.history).count == 1 && HistoryStart.summaries(c.history)[0].hasPrefix("payments before "))
        // Kept with the checkpoints, and a restored core does not record the starts again.
        #expect(c.checkpointAll(sinks: [], stop: nil))
        #expect(storage.loadHistory(0).contains(start))
        let restored = try core(storage)
        #expect(Set(restored.history.map(\.topic)) == Set(c.history.map(\.topic)))
        #expect(restored.history.filter(\.isPartial) == [start])
    }

    @Test func aStartTimeMakesEveryHistoryPartialOnPurpose() throws {
        let storage = MemoryCheckpointStorage()
        let c = try core(storage) { $0.startTime = Timestamp(year: 2024, month: 6, day: 1) }
        _ = c.apply(input, startMs: Timestamp(year: 2024, month: 6, day: 1).ms)
        #expect(!c.history.isEmpty && c.history.allSatisfy { $0.gap == .skippedByStartTime && $0.isPartial })
        // The history starts at the start time, not at the first message read: here the earliest, read and skipped
        // (it said "before 2024-01-01 was skipped … (0 messages …)").
        #expect(c.history.allSatisfy { $0.firstTimestampMs == Timestamp(year: 2024, month: 6, day: 1).ms })
        let summaries = HistoryStart.summaries(c.history)
        #expect(!summaries.isEmpty && summaries.allSatisfy { $0.contains(" before 2024-06-01 was skipped") && !$0.contains("messages") }, "\(summaries)")
    }
}
