import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts
import Synchronization

/// The consumer's core: the input partitions' mart states, the alert engine, and when to checkpoint them.
///
/// Drivers feed it (`KafkaDriver` from a consumer group, `ArchiveDriver` from a file): they open the
/// partitions they are given, pass batches of messages to `apply`, hand the returned outputs to the sinks,
/// and call `checkpoint` when `checkpointDue` says so. The core does no Kafka or network I/O; its
/// checkpoints go through a `CheckpointStorage`, so it is tested with `MemoryCheckpointStorage`.
///
/// Not thread-safe: one driver thread calls it (the rebalance callbacks run inside the driver's poll).
/// `apply` shares a batch's partitions out to `options.threads` threads itself.
public final class ConsumerCore {
    public struct Summary: Sendable {
        public var accepted = 0
        public var duplicates = 0
        public var rejected = 0
        public var skippedAfterUntil = 0
        public var skippedBeforeStart = 0
        public var riskChanges = 0
        public var alertsFiring = 0
        public var alertsResolved = 0
        public var checkpoints = 0
        /// Time spent writing checkpoints (the consuming thread waits for them).
        public var checkpointSeconds = 0.0
        /// Polled batches whose partitions were applied on more than one thread (see `Options.threads`).
        public var parallelBatches = 0
        /// Summed over those batches: how long the first thread to finish waited for the last.
        public var idleLaneSeconds = 0.0
        /// Partitions found behind their end after a quiet spell and restarted (see `stallCheckInterval`).
        public var stalledPartitionRestarts = 0
        public var seconds = 0.0
        public init() {}
        /// Every input message taken in, whatever its outcome.
        public var taken: Int { accepted + duplicates + rejected + skippedAfterUntil + skippedBeforeStart }
    }

    /// One input partition number: its marts state and the next offset of each input topic with that number.
    /// The properties touched per message are not checked for exclusive access at run time (four checks a
    /// message, 2% of a replay's instructions): a partition is used by one lane's thread at a time, and no
    /// access to them overlaps another.
    final class Partition {
        @exclusivity(unchecked) var state: MartState
        /// The next offset of each topic read in this partition (the few input topics): a list searched by name,
        /// where a dictionary hashed the name at every message (2% of a replay's instructions).
        @exclusivity(unchecked) private var next: [(topic: String, offset: Int64)]
        var offsets: [String: Int64] { Dictionary(next, uniquingKeysWith: { a, _ in a }) }
        /// The offsets of the last checkpoint (or those the partition was opened at).
        var checkpointedOffsets: [String: Int64]
        /// Messages the state had taken in at that checkpoint (see `StatePosition`).
        var checkpointedTaken: Int64
        @exclusivity(unchecked) var sinceCheckpoint = 0
        /// Where each topic's history starts in this partition; `historyChanged` until the next checkpoint.
        @exclusivity(unchecked) var history: [String: HistoryStart] = [:]
        var historyChanged = false
        /// Starts recorded since the core last looked (for one warning per batch).
        var newHistory: [HistoryStart] = []
        /// Per topic, the first offset of a message left out as after `options.until`: its checkpoints stay at
        /// that position (while `offsets` reads on), so a later run without `until` applies what was left out.
        /// What it reads again before that message's successors counts as duplicates, never twice.
        var held: [String: Int64] = [:]
        init(state: MartState, offsets: [String: Int64]) {
            self.state = state
            next = offsets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            checkpointedOffsets = offsets
            checkpointedTaken = StatePosition(offsets: offsets, state: state).taken
        }

        /// The next offset of `topic`, or nil before its first message.
        func nextOffset(_ topic: String) -> Int64? { next.first { $0.topic == topic }?.offset }

        /// Records `offset` as the next of `topic`; false when the topic had none before.
        func advance(_ topic: String, to offset: Int64) -> Bool {
            for i in next.indices where next[i].topic == topic {
                next[i].offset = offset
                return true
            }
            next.append((topic, offset))
            return false
        }

        /// Where the last checkpoint left the state.
        var checkpointedPosition: StatePosition { StatePosition(offsets: checkpointedOffsets, taken: checkpointedTaken) }

        /// The offsets a checkpoint records: the next to apply, or the held position where one is held.
        var checkpointOffsets: [String: Int64] {
            held.isEmpty ? offsets : offsets.merging(held) { min($0, $1) }
        }

        /// Keeps the checkpoints of `topic` at `offset` or before it (see `held`).
        func hold(_ topic: String, at offset: Int64) {
            if let h = held[topic], h <= offset { return }
            held[topic] = offset
        }
    }

    public let options: ConsumerOptions
    let storage: any CheckpointStorage
    let logger: Logger
    var partitions: [Int32: Partition] = [:]
    /// Each input topic's name in this consumer (`options.topics`), in topic order.
    let topicNames: [(name: String, topic: InputTopic)]
    private var rebuilt = Set<Int32>()
    public internal(set) var summary = Summary()
    public private(set) var checkpointFailures = 0
    public private(set) var lastCheckpointSeconds = 0.0
    /// What a gap before a topic-partition's first message means for this driver (Kafka: deleted by retention).
    public var historyGap: HistoryStart.Gap = .deleted
    /// Set when a checkpoint was given up because the consumer was stopped (or `giveUpCheckpointsWhen` said so)
    /// while it kept failing (what and why); cleared by the next checkpoint that succeeds.
    public private(set) var checkpointGaveUp: String?
    /// Besides a stop (after a few tries): when a checkpoint that keeps failing is given up, so that nothing
    /// beyond the last good checkpoint counts as done. The Kafka driver sets it for a cluster that does not answer
    /// while the consumer stops, or that a batch run has waited for long enough.
    var giveUpCheckpointsWhen: (() -> Bool)?
    /// Called after each failed try of a checkpoint that is retried: the driver refreshes its metrics from it, so
    /// that they show the failures (and the cluster's absence) while consumption waits.
    var whileRetrying: (() -> Void)?
    /// A sink failure that no retry mends (`FatalSinkError`, or any failure to take outputs: those are gone from
    /// the core's hands): the driver stops with it, the last checkpoint standing, and no checkpoint is taken after it.
    public internal(set) var fatalSinkError: (any Error)?
    /// Each checkpoint's duration since the last report took them (for the duration histogram).
    var checkpointDurations: [Double] = []
    var alerting: Alerting?
    /// Alerts raised so far, in order.
    public private(set) var alerts: [Alert] = []
    private let taken = Atomic<Int>(0)
    /// Messages taken in so far (safe to read from any thread, for progress).
    public var progress: Int { taken.load(ordering: .relaxed) }

    /// Drivers call `start()` next.
    public init(options: ConsumerOptions, storage: any CheckpointStorage, logger: Logger) {
        self.options = options
        self.storage = storage
        self.logger = logger
        topicNames = options.topics.map { (name: $0.value, topic: $0.key) }.sorted { $0.topic.ordinal < $1.topic.ordinal }
    }

    /// The input topic a topic name is in this consumer: a search of the few names, cheaper than hashing the
    /// name (it runs per message).
    func inputTopic(named name: String) -> InputTopic? { topicNames.first { $0.name == name }?.topic }

    /// This consumer's input topic names.
    var inputTopicNames: Set<String> { Set(topicNames.map(\.name)) }

    // MARK: Partitions

    /// The partition numbers open now.
    public var openPartitions: [Int32] { partitions.keys.sorted() }

    /// Opens (loads, or creates empty) every partition of `numbers` not open yet, decoding their checkpoints
    /// in parallel. Throws the first unusable checkpoint; the others stay open.
    public func open(_ numbers: [Int32]) throws(CheckpointError) {
        let missing = Set(numbers).filter { partitions[$0] == nil }.sorted()
        guard !missing.isEmpty else { return }
        for p in missing where options.rebuild && !rebuilt.contains(p) {
            try? storage.remove(p)
            rebuilt.insert(p)
            logger.notice("partition \(p): checkpoint discarded, rebuilding from the earliest offsets")
        }
        var failure: CheckpointError?
        var resumed: [Int32] = []
        for (p, result) in zip(missing, storage.load(missing)) {
            switch result {
            case let .success(loaded):
                // Offsets of other topics: the state of a consumer of other topics (a replayed history's consumer
                // pointed at the live one's directory, say). Left as it is: neither used nor written over.
                if let loaded, !loaded.offsets.keys.allSatisfy(inputTopicNames.contains) {
                    failure = failure ?? CheckpointError(
                        partition: p, file: storage.location(p),
                        problem: "it is of topics \(loaded.offsets.keys.sorted().joined(separator: ", ")), and this consumer reads "
                            + inputTopicNames.sorted().joined(separator: ", "), kind: .anotherConsumers)
                    continue
                }
                let part = Partition(state: loaded?.state ?? MartState(), offsets: loaded?.offsets ?? [:])
                if let hot = options.hotCustomers { part.state.hotCustomerCapacity = hot }
                for h in storage.loadHistory(p) { part.history[h.topic] = h }
                partitions[p] = part
                if let loaded {
                    for note in loaded.notes { logger.warning("\(note)") }
                    resumed.append(p)
                }
            case let .failure(e): failure = failure ?? e
            }
        }
        if !resumed.isEmpty {
            logger.info("resumed from checkpoints", metadata: [LogKey.partitions: "\(PartitionRanges(resumed))",
                                                                LogKey.accepted: "\(resumed.reduce(0) { $0 + partitions[$1]!.state.accepted })"])
        }
        if let failure { throw failure }
    }

    /// The next offset to apply of a topic-partition, nil when the partition is not open or has none.
    public func nextOffset(_ tp: TopicPartition) -> Int64? { partitions[tp.partition]?.nextOffset(tp.topic) }

    /// Keeps a topic-partition's checkpoints at `offset` or before it: a message there was left out as after
    /// `options.until` by the driver (an archive's record by its timestamp). The core holds those it leaves
    /// out itself (by event time).
    public func hold(_ tp: TopicPartition, at offset: Int64) { partitions[tp.partition]?.hold(tp.topic, at: offset) }

    /// Whether a topic-partition has had a message after `options.until` (so, in time order, nothing more before it).
    public func isPastUntil(_ tp: TopicPartition) -> Bool { partitions[tp.partition]?.held[tp.topic] != nil }

    /// Gives partitions up (a rebalance): checkpoints them first, then lets their storage settle.
    public func close(_ numbers: Set<Int32>, sinks: [any ConsumerSink], stop: StopSignal?) {
        checkpointAll(sinks: sinks, stop: stop)
        alerting?.forget(sources: numbers)
        release(numbers.sorted())
        for p in numbers { partitions[p] = nil }
    }

    /// Waits for background work of `numbers` (default: every open partition) before they are given up or the
    /// process ends. The log holds everything meanwhile, so a failure loses nothing; it is reported.
    public func release(_ numbers: [Int32]? = nil) {
        for p in (numbers ?? openPartitions) where partitions[p] != nil {
            do { try storage.release(p) } catch { logger.error("partition \(p): background compaction failed (\(error)); its log still holds every checkpoint") }
        }
    }

    /// The offsets the open partitions' checkpoints reflect, by input topic-partition.
    public var checkpointedPositions: [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        for (p, part) in partitions { for (topic, o) in part.checkpointedOffsets { out[TopicPartition(topic, p)] = o } }
        return out
    }

    /// The largest event time accepted so far (the marts' as-of).
    public var asOf: Timestamp? { partitions.values.compactMap(\.state.maxTime).max() }

    /// Hands a batch's outputs to every sink, in order. A sink that throws has not taken them all, and they
    /// cannot be produced again from here: the error is kept as `fatalSinkError`, so that no checkpoint covers
    /// that batch (a rebalance's or the final one included), and rethrown for the driver to stop with. The next
    /// start applies the batch again and sends its outputs.
    public func send(_ outputs: [ConsumerOutput], to sinks: [any ConsumerSink]) throws {
        do {
            for sink in sinks { try sink.send(outputs) }
        } catch {
            if fatalSinkError == nil { fatalSinkError = error }
            throw error
        }
    }

    // MARK: Checkpoints

    /// Whether a partition has taken `checkpointEvents` messages since its last checkpoint.
    public var checkpointDueByCount: Bool { partitions.values.contains { $0.sinceCheckpoint >= options.checkpointEvents } }

    /// Checkpoints the alert engine, then every partition with changes (all with `force`), after every sink
    /// flushed. On failure (disk full, read-only) waits and retries, taking nothing in meanwhile, so offsets
    /// never move past un-checkpointed state; false when stopped while failing.
    @discardableResult
    public func checkpointAll(sinks: [any ConsumerSink], stop: StopSignal?, force: Bool = false) -> Bool {
        // Outputs a sink failed to take (or lost) are not sent again from here: a checkpoint would cover them.
        guard fatalSinkError == nil else { return false }
        let changed = force || partitions.values.contains { $0.sinceCheckpoint > 0 }
        let mirrors = sinks.filter(\.mirrorsState)
        guard changed || mirrors.contains(where: \.wantsCheckpoint) else { return true }
        var previous: [Int32: (position: StatePosition, changed: [String])] = [:]
        guard changed else {
            tellMirrors(mirrors, previous)
            return true
        }
        guard retrying("outputs", stop: stop, { for s in sinks { try s.flush() } }) else { return false }
        // The alert engine first: if a crash follows before a partition's checkpoint, that partition resumes
        // from older offsets and the engine skips what it has already seen.
        if var a = alerting {
            // Never backwards: a partition that resumed from an older checkpoint than the engine's is behind what
            // the engine has seen of it until it catches up, and the engine must go on skipping that stretch.
            for (p, part) in partitions {
                for (topic, o) in part.checkpointOffsets { a.offsets[topic, default: [:]][p] = max(o, a.offsets[topic]?[p] ?? 0) }
            }
            alerting = a
            guard retrying("alert engine", stop: stop, { try storage.writeAlertEngine(a.engine.state, rules: a.fingerprint, offsets: a.offsets) }) else { return false }
        }
        for p in openPartitions where force || partitions[p]!.sinceCheckpoint > 0 {
            let part = partitions[p]!
            let before = (part.checkpointedPosition, mirrors.isEmpty ? [] : part.state.changedCustomerIDs)
            guard retrying("partition \(p)", stop: stop, { try checkpoint(p) }) else { return false }
            previous[p] = before
        }
        checkpointGaveUp = nil  // every change is in a checkpoint now, whatever was given up before
        tellMirrors(mirrors, previous)
        return true
    }

    /// Hands every open partition, as checkpointed, to the sinks that mirror the marts.
    private func tellMirrors(_ mirrors: [any ConsumerSink], _ previous: [Int32: (position: StatePosition, changed: [String])]) {
        guard !mirrors.isEmpty else { return }
        let view = openPartitions.filter { partitions[$0]!.sinceCheckpoint == 0 }.map { p in
            let part = partitions[p]!
            let before = previous[p]
            return CheckpointedPartition(number: p, state: part.state, offsets: part.checkpointedOffsets,
                                         previous: before?.position ?? part.checkpointedPosition, changedCustomers: before?.changed ?? [],
                                         history: Array(part.history.values))
        }
        for sink in mirrors { sink.checkpointed(view) }
    }

    private func checkpoint(_ p: Int32) throws {
        guard let part = partitions[p] else { return }
        let started = ContinuousClock.now
        if part.historyChanged {
            // Before the checkpoint that first covers these messages: a crash in between re-records the same starts.
            try storage.writeHistory(p, Array(part.history.values))
            part.historyChanged = false
        }
        var state = part.state
        let offsets = part.checkpointOffsets
        try storage.write(p, state: &state, offsets: offsets)
        part.state = state
        part.checkpointedOffsets = offsets
        part.checkpointedTaken = StatePosition(offsets: offsets, state: state).taken
        lastCheckpointSeconds = (ContinuousClock.now - started).seconds
        summary.checkpointSeconds += lastCheckpointSeconds
        if checkpointDurations.count < 100_000 { checkpointDurations.append(lastCheckpointSeconds) }
        part.sinceCheckpoint = 0
        summary.checkpoints += 1
        options.probe?.checkpointed(seconds: lastCheckpointSeconds)
    }

    /// Runs a write until it succeeds; false when stopped while failing.
    private func retrying(_ what: String, stop: StopSignal?, _ write: () throws -> Void) -> Bool {
        var attempt = 0
        while true {
            do {
                try write()
                if attempt > 0 { logger.notice("\(what): checkpoint written again after \(attempt) failures") }
                return true
            } catch {
                attempt += 1
                checkpointFailures += 1
                options.probe?.checkpointFailed()
                let reason = ErrorWords.describe(error)
                // The first failure at once, then once a minute while it lasts (retries are a second apart).
                if attempt == 1 || attempt % 60 == 0 {
                    logger.error("\(what): checkpoint failed (\(reason)); not consuming until it succeeds\(attempt > 1 ? " (\(attempt) tries)" : "")")
                }
                if error is any FatalSinkError {
                    fatalSinkError = error
                    return false
                }
                if (stop?.isStopped == true && attempt > 3) || giveUpCheckpointsWhen?() == true {
                    checkpointGaveUp = "\(what): \(reason)"
                    return false
                }
                whileRetrying?()
                if let stop { stop.sleep(.seconds(1)) } else { Thread.sleep(forTimeInterval: 1) }
            }
        }
    }

    // MARK: Where history starts

    /// Every open partition's topics' history starts.
    public var history: [HistoryStart] { partitions.values.flatMap { $0.history.values } }

    /// One warning for the history starts recorded by the last batch that miss messages.
    private func warnAboutNewHistory() {
        var partial: [HistoryStart] = []
        for part in partitions.values where !part.newHistory.isEmpty {
            partial += part.newHistory.filter(\.isPartial)
            part.newHistory.removeAll()
        }
        guard !partial.isEmpty else { return }
        let ranges = TopicPartitionRanges(partial.map { TopicPartition($0.topic, $0.partition) })
        let missed = partial.reduce(0) { $0 + $1.missedMessages }
        logger.warning("marts built on partial history: \(HistoryStart.summaries(partial).joined(separator: "; ")); `undercurrent check` reports it",
                       metadata: [LogKey.partitions: "\(ranges)", LogKey.missedMessages: "\(missed)"])
    }

    // MARK: Applying messages

    /// What applying one message to its partition's state gave.
    struct Applied {
        /// nil: skipped, its timestamp before the start time.
        var outcome: MartState.Outcome?
        /// The accepted event, kept only for the alert engine (a payment while alerting is on), boxed: results
        /// are moved about a batch at a time, and an event inline made each four times larger.
        var kept: KeptEvent?
        var risk: [RiskChange] = []
    }

    final class KeptEvent: Sendable {
        let event: Event
        init(_ event: Event) { self.event = event }
    }

    /// Applies a batch of input messages (any topics and partitions, each partition's in offset order) and
    /// returns what must leave the process because of them, in message order. Messages of partitions that
    /// are not open, or of other topics, are ignored. Messages before `startMs` only move offsets.
    public func apply(_ messages: [KafkaMessage], startMs: Int64? = nil) -> [ConsumerOutput] {
        let applied = applyLanes(messages, startMs: startMs)
        warnAboutNewHistory()
        var outputs: [ConsumerOutput] = []
        for i in applied.indices {
            guard let a = applied[i] else { continue }
            account(messages, i, a, into: &outputs)
        }
        return outputs
    }

    /// Where a message was: what `apply(part:at:_:keepEvent:)` needs of it.
    struct Position {
        var topic: String
        var partition: Int32
        var offset: Int64
        var timestampMs: Int64?
    }

    /// The per-partition half of taking in a message: applies its prepared event to its partition's state,
    /// with the risk segment changes that gave. Touches nothing but `part`, so different partitions can run
    /// on different threads. `keepEvent`: the accepted event goes with the result (for the alert engine).
    func apply(part: Partition, at message: Position, _ prepared: borrowing MartState.Prepared, keepEvent: Bool) -> Applied {
        // One lookup in the common case: the previous offset says whether this topic-partition had any message.
        if !part.advance(message.topic, to: message.offset + 1) && part.history[message.topic] == nil {
            // The first message of this topic-partition: the history of the marts starts here.
            let gap: HistoryStart.Gap? = options.startTime != nil ? .skippedByStartTime : message.offset == 0 ? nil : historyGap
            // With a start time the history starts there, whatever the first message read: one before it (scanned
            // and skipped, an archive's or where the cluster has no lookup by time) or after it.
            let start = HistoryStart(topic: message.topic, partition: message.partition, firstOffset: message.offset,
                                     firstTimestampMs: options.startTime?.ms ?? message.timestampMs, missedMessages: message.offset, gap: gap)
            part.history[message.topic] = start
            part.historyChanged = true
            part.newHistory.append(start)
        }
        part.sinceCheckpoint += 1
        if prepared.isIgnored { return Applied(outcome: nil) }
        let outcome = part.state.commit(prepared)
        var applied = Applied(outcome: outcome)
        if outcome == .afterLimit { part.hold(message.topic, at: message.offset) }
        guard outcome == .accepted else { return applied }
        if options.riskTopic != nil {
            // (`prepared.event`, not `event(after:)`: that copies the whole event for its customer's id.)
            if let change = part.state.riskChange(of: prepared.event.customerID) { applied.risk.append(change) }
            applied.risk += part.state.timeDrivenRiskChanges()
        }
        if keepEvent, let event = prepared.event(after: outcome) { applied.kept = KeptEvent(event) }
        return applied
    }

    /// The stateless part of applying: decoding and validation (`MartState.prepare`), or `.ignored` for a
    /// message before `startMs`.
    func prepare(topic: InputTopic, value: ArraySlice<UInt8>, key: ArraySlice<UInt8>?, timestampMs: Int64?, startMs: Int64?) -> MartState.Prepared {
        if let startMs, let t = timestampMs, t < startMs { return .ignored }
        return MartState.prepare(value: value, topic: topic, key: key, until: options.until, requireKey: true)
    }

    /// The serial half: counts the outcome, feeds the alert engine (in message order) and collects the
    /// outputs: the rejection for the dead-letter topic, the risk changes, the alerts whose time came.
    private func account(_ messages: borrowing [KafkaMessage], _ i: Int, _ applied: Applied, into outputs: inout [ConsumerOutput]) {
        taken.add(1, ordering: .relaxed)
        guard let outcome = applied.outcome else {
            summary.skippedBeforeStart += 1
            return
        }
        switch outcome {
        case .accepted:
            summary.accepted += 1
            summary.riskChanges += applied.risk.count
            for r in applied.risk { outputs.append(.riskChange(r)) }
            guard let event = applied.kept?.event, alerting != nil else { return }
            // Seen by the engine before its checkpoint (this partition resumed from an older one).
            let p = messages[i].partition
            if messages[i].offset < alerting!.offsets[messages[i].topic]?[p] ?? 0 { return }
            // Mutated in place: a copy of the engine per attempt would copy its tables.
            let raised = alerting!.engine.observe(event, source: Int(p))
            for alert in raised {
                if alert.state == .firing { summary.alertsFiring += 1 } else { summary.alertsResolved += 1 }
                logger.log(level: alert.state == .firing ? .warning : .notice, "alert \(alert.state.rawValue): \(alert.rule) [\(alert.scope)]",
                           metadata: [LogKey.alertAt: "\(alert.at)", LogKey.alertObservedRate: "\(alert.observedRate)",
                                      LogKey.alertBaselineRate: "\(alert.baselineRate)"])
                outputs.append(.alert(alert))
            }
            alerts += raised
        case .afterLimit:
            summary.skippedAfterUntil += 1
        case .duplicate:
            summary.duplicates += 1
        case let .rejected(r):
            summary.rejected += 1
            outputs.append(.deadLetter(r, messages[i]))
        }
    }
}
