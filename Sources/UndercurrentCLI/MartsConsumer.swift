import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts
import Synchronization

/// Observes the consumer from the inside (load tests): every message once applied to the marts (or
/// rejected), and every checkpoint's duration. Called on the consuming thread: keep it short.
public protocol ConsumerProbe: AnyObject, Sendable {
    func applied(_ message: KafkaMessage)
    func checkpointed(seconds: Double)
}

/// The consumer: input partitions → per-partition mart states → checkpoints with their offsets.
///
/// `@unchecked Sendable`: the rebalance callbacks that touch `partitions` run on the polling thread,
/// inside `poll`, which is the only thread that touches it otherwise.
public final class MartsConsumer: @unchecked Sendable {
    public struct Options: Sendable {
        public var stateDirectory: URL
        public var group = "undercurrent-marts"
        public var topics: [InputTopic: String] = Dictionary(uniqueKeysWithValues: InputTopic.allCases.map { ($0, $0.rawValue) })
        public var deadLetterTopic = "events-dlq"
        /// Larger values go to the dead-letter topic truncated to this size (with `dlq-truncated-from`).
        public var deadLetterMaxBytes = 512 * 1024
        public var checkpointEvents = 50_000
        public var checkpointInterval: Duration = .seconds(2)
        /// Discard checkpoints and start from the earliest offsets.
        public var rebuild = false
        /// Ignore events after this time (as-of analysis).
        public var until: Timestamp?
        /// Stop after this long without messages (for batch runs, tests and the demo).
        public var exitWhenIdle: Duration?
        /// How often progress is logged and metrics refreshed.
        public var reportInterval: Duration = .seconds(5)
        /// Where to write the metrics (Prometheus text format) at each report, atomically.
        public var metricsFile: URL?
        /// Failure-spike alert rules; nil disables alerting.
        public var alertRules: AlertRules?
        public var alertsTopic = "alerts"
        /// Optional HTTP endpoint that receives each alert as a JSON POST.
        public var alertWebhook: AlertWebhook?
        /// Changelog of risk segment changes, keyed by customer; nil disables it.
        public var riskTopic: String? = "customer-risk"
        /// Start partitions without a checkpoint at this time (ListOffsets by timestamp); messages with an
        /// earlier timestamp are skipped either way.
        public var startTime: Timestamp?
        /// How long alerting waits for an assigned payments partition that sends nothing (an empty one).
        public var alertSourceWait: Duration = .seconds(10)
        /// Sees every applied message and every checkpoint (load tests).
        public var probe: ConsumerProbe?
        /// After this long without messages, the brokers are asked whether any partition has messages that
        /// never came (a stalled fetch), and such partitions are restarted; also done before `exitWhenIdle`.
        public var stallCheckInterval: Duration = .seconds(15)
        /// Customers kept unpacked per partition (see `CustomerTable`); nil: the default, 8,192.
        public var hotCustomers: Int?
        /// Threads that apply a polled batch, each taking the next partition's messages as it comes free (each
        /// partition on one thread).
        public var threads = min(2, ProcessInfo.processInfo.activeProcessorCount)
        /// Most messages taken by one poll (a batch split over `threads` by partition).
        public var pollBatch = 20_000
        public init(stateDirectory: URL) { self.stateDirectory = stateDirectory }
    }

    final class Partition {
        var state: MartState
        let store: CheckpointStore
        var offsets: [String: Int64]
        var sinceCheckpoint = 0
        init(state: MartState, store: CheckpointStore, offsets: [String: Int64]) {
            self.state = state
            self.store = store
            self.offsets = offsets
        }
    }

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
    }

    let options: Options
    let logger: Logger
    private var partitions: [Int32: Partition] = [:]
    private var topicOf: [String: InputTopic] = [:]
    private var rebuilt = Set<Int32>()
    private var loadError: CheckpointError?
    public private(set) var summary = Summary()
    private var alertEngine: AlertEngine?
    /// The alert engine's checkpoint, and the offsets below which it has seen every message.
    private var alertStore: AlertStateStore?
    private var alertRulesFingerprint = ""
    private var alertOffsets: [String: [Int32: Int64]] = [:]
    private var alertLoadError: CheckpointError?
    /// A checkpointed engine, used once it is known to cover exactly this process's payments partitions.
    private var pendingAlertState: AlertStateStore.Loaded?
    /// Payments partitions the alert engine waits for, since when.
    private var heldSince: [Int: ContinuousClock.Instant] = [:]
    /// Alerts raised so far, in order (also sent to the alerts topic when consuming from Kafka).
    public private(set) var alerts: [Alert] = []
    private let metricsSnapshot = Mutex(ConsumerMetrics())
    private var checkpointFailures = 0
    private var lastCheckpointSeconds = 0.0
    /// The latest metrics (refreshed at each report), safe to read from any thread.
    public var metrics: ConsumerMetrics { metricsSnapshot.withLock { $0 } }
    private let ingested = Atomic<Int>(0)
    private let assignedFlag = Atomic<Bool>(false)
    /// Whether the group gave this consumer partitions (safe to read from any thread).
    public var isAssigned: Bool { assignedFlag.load(ordering: .acquiring) }
    /// Messages taken in so far (safe to read from any thread, for progress).
    public var progress: Int { ingested.load(ordering: .relaxed) }

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
        for (t, name) in options.topics { topicOf[name] = t }
        alertEngine = options.alertRules.map { AlertEngine(rules: $0) }
        if let rules = options.alertRules {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            alertRulesFingerprint = (try? encoder.encode(rules)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let store = AlertStateStore(stateDirectory: options.stateDirectory)
            alertStore = store
            if options.rebuild {
                store.remove()
            } else {
                do {
                    if let loaded = try store.load(rules: alertRulesFingerprint) { pendingAlertState = loaded }
                } catch let e as CheckpointError {
                    alertLoadError = e
                } catch {}
            }
        }
    }

    /// Loads (or creates) the state of a partition number; returns the offsets to start its topics at.
    func open(_ p: Int32) throws(CheckpointError) -> Partition {
        if let existing = partitions[p] { return existing }
        let store = prepare(p)
        return adopt(p, store: store, loaded: try store.load(repair: true))
    }

    /// Opens every partition of `numbers` not open yet, decoding their checkpoints in parallel (one per
    /// core). A partition whose checkpoint is unusable stays closed; `open` then reports it.
    func openAll(_ numbers: [Int32]) {
        let missing = Set(numbers).filter { partitions[$0] == nil }.sorted()
        guard missing.count > 1 else { return }
        let stores = missing.map { prepare($0) }
        for (p, (store, result)) in zip(missing, zip(stores, CheckpointStore.loadAll(stores, repair: true))) {
            if case let .success(loaded) = result { _ = adopt(p, store: store, loaded: loaded) }
        }
    }

    /// The store of a partition, emptied first when rebuilding.
    private func prepare(_ p: Int32) -> CheckpointStore {
        let store = CheckpointStore(stateDirectory: options.stateDirectory, partition: p)
        if options.rebuild && !rebuilt.contains(p) {
            try? store.remove()
            if rebuilt.isEmpty { try? FileManager.default.removeItem(at: options.stateDirectory.appendingPathComponent(AlertLog.fileName)) }
            rebuilt.insert(p)
            logger.notice("partition \(p): checkpoint discarded, rebuilding from the earliest offsets")
        }
        return store
    }

    private func adopt(_ p: Int32, store: CheckpointStore, loaded: CheckpointStore.Loaded?) -> Partition {
        let part: Partition
        if let loaded {
            for note in loaded.notes { logger.warning("\(note)") }
            part = Partition(state: loaded.state, store: store, offsets: loaded.offsets)
            logger.info("partition \(p): resumed from checkpoint", metadata: ["marts.accepted": "\(loaded.state.accepted)",
                                                                              "kafka.offsets": "\(loaded.offsets.sorted { $0.key < $1.key })"])
        } else {
            part = Partition(state: MartState(), store: store, offsets: [:])
        }
        if let hot = options.hotCustomers { part.state.hotCustomerCapacity = hot }
        partitions[p] = part
        return part
    }

    func checkpoint(_ p: Int32, outputs: KafkaProducer?) throws {
        guard let part = partitions[p] else { return }
        try outputs?.flush(timeout: .seconds(30))
        let started = ContinuousClock.now
        var state = part.state
        try part.store.write(&state, offsets: part.offsets)
        part.state = state
        lastCheckpointSeconds = (ContinuousClock.now - started).seconds
        summary.checkpointSeconds += lastCheckpointSeconds
        part.sinceCheckpoint = 0
        summary.checkpoints += 1
        options.probe?.checkpointed(seconds: lastCheckpointSeconds)
    }

    /// Checkpoints every partition with changes; on failure (disk full, read-only) waits and retries,
    /// consuming nothing meanwhile, so offsets never move past un-checkpointed state.
    func checkpointAll(outputs: KafkaProducer?, stop: StopSignal?, force: Bool = false) {
        // The alert engine first: if a crash follows before a partition's checkpoint, that partition
        // resumes from older offsets and the engine skips what it has already seen.
        if let store = alertStore, let engine = alertEngine, force || partitions.values.contains(where: { $0.sinceCheckpoint > 0 }) {
            for (p, part) in partitions { for (topic, o) in part.offsets { alertOffsets[topic, default: [:]][p] = o } }
            let offsets = alertOffsets, rules = alertRulesFingerprint
            guard retrying("alert engine", stop: stop, { try store.write(engine.state, rules: rules, offsets: offsets) }) else { return }
        }
        for p in partitions.keys.sorted() where force || partitions[p]!.sinceCheckpoint > 0 {
            guard retrying("partition \(p)", stop: stop, { try checkpoint(p, outputs: outputs) }) else { return }
        }
    }

    /// Waits for the background compactions of `numbers` (default: every open partition) before they are
    /// given up or the process ends. The log holds everything meanwhile, so a failure loses nothing; it is
    /// reported.
    func finishCompactions(_ numbers: [Int32]? = nil) {
        for p in (numbers ?? Array(partitions.keys)).sorted() {
            guard let part = partitions[p] else { continue }
            do { try part.store.finishCompaction() } catch { logger.error("partition \(p): background compaction failed (\(error)); its log still holds every checkpoint") }
        }
    }

    /// Adopts the checkpointed alert engine if it covers exactly `partitions` of the payments topic (several
    /// consumers sharing a state directory each have their own engine; after a rebalance it starts afresh).
    func adoptAlertState(for partitions: Set<Int32>) {
        guard let loaded = pendingAlertState, let rules = options.alertRules else { return }
        pendingAlertState = nil
        let covered = Set((loaded.offsets[options.topics[.payments] ?? "payments"] ?? [:]).keys)
        guard covered == partitions else {
            logger.notice("alert engine checkpoint covers payments partitions \(covered.sorted()), this consumer has \(partitions.sorted()): starting the engine afresh")
            return
        }
        var engine = AlertEngine(rules: rules, state: loaded.state)
        for s in engine.heldSources { engine.forget(source: s) }
        alertEngine = engine
        alertOffsets = loaded.offsets
        logger.info("alert engine resumed from its checkpoint", metadata: ["alerts.open": "\(loaded.state.open.count)"])
    }

    /// Runs a checkpoint write until it succeeds, consuming nothing meanwhile; false when stopped while failing.
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
                logger.error("\(what): checkpoint failed (\(error)); not consuming until it succeeds")
                if stop?.isStopped == true && attempt > 3 { return false }
                Thread.sleep(forTimeInterval: 1)
            }
        }
    }

    /// What applying one message to its partition's state gave.
    struct Applied {
        /// nil: skipped, its timestamp before `startTime`.
        var outcome: MartState.Outcome?
        var event: Event?
        var risk: [RiskChange] = []
    }

    /// The per-partition half of taking in a message: decodes it and applies it to its partition's state,
    /// with the risk segment changes that gave. Touches nothing but `part`, so different partitions can run
    /// on different threads.
    func apply(part: Partition, topic: InputTopic, message: KafkaMessage, startMs: Int64? = nil) -> Applied {
        apply(part: part, message: message, prepare(topic: topic, message: message, startMs: startMs))
    }

    /// The stateless part of `apply`: decoding and validation (`MartState.prepare`), or `.ignored` for a
    /// message before `startMs`.
    func prepare(topic: InputTopic, message: KafkaMessage, startMs: Int64?) -> MartState.Prepared {
        if let startMs, let t = message.timestampMs, t < startMs { return .ignored }
        return MartState.prepare(value: message.value, topic: topic, key: message.key, until: options.until, requireKey: true)
    }

    /// The stateful part of `apply`, for a message prepared by `prepare`.
    func apply(part: Partition, message: KafkaMessage, _ prepared: borrowing MartState.Prepared) -> Applied {
        part.offsets[message.topic] = message.offset + 1
        part.sinceCheckpoint += 1
        if prepared.isIgnored { return Applied(outcome: nil, event: nil) }
        let outcome = part.state.commit(prepared)
        var applied = Applied(outcome: outcome, event: prepared.event(after: outcome))
        if outcome == .accepted, options.riskTopic != nil, let event = applied.event {
            if let change = part.state.riskChange(of: event.customerID) { applied.risk.append(change) }
            applied.risk += part.state.timeDrivenRiskChanges()
        }
        return applied
    }

    /// The serial half: counts the outcome and feeds the alert engine (in message order); returns the
    /// rejection to send to the dead-letter topic, if any, the alerts whose time came and the risk changes.
    func account(partition p: Int32, topic: InputTopic, message: KafkaMessage, _ applied: Applied) -> (Rejection?, [Alert], [RiskChange]) {
        ingested.add(1, ordering: .relaxed)
        guard let outcome = applied.outcome else {
            summary.skippedBeforeStart += 1
            return (nil, [], [])
        }
        switch outcome {
        case .accepted:
            summary.accepted += 1
            let risk = applied.risk
            summary.riskChanges += risk.count
            guard topic == .payments, let event = applied.event, var engine = alertEngine else { return (nil, [], risk) }
            // Seen by the engine before its checkpoint (this partition resumed from an older one).
            if message.offset < alertOffsets[message.topic]?[p] ?? 0 { return (nil, [], risk) }
            let raised = engine.observe(event, source: Int(p))
            alertEngine = engine
            for a in raised {
                if a.state == .firing { summary.alertsFiring += 1 } else { summary.alertsResolved += 1 }
                logger.log(level: a.state == .firing ? .warning : .notice, "alert \(a.state.rawValue): \(a.rule) [\(a.scope)]",
                           metadata: ["alert.at": "\(a.at)", "alert.observed_rate": "\(a.observedRate)", "alert.baseline_rate": "\(a.baselineRate)"])
            }
            alerts += raised
            appendAlerts(raised)
            if let hook = options.alertWebhook { for a in raised { hook.post(a) } }
            return (nil, raised, risk)
        case .afterLimit:
            summary.skippedAfterUntil += 1
            return (nil, [], [])
        case .duplicate:
            summary.duplicates += 1
            return (nil, [], [])
        case let .rejected(r):
            summary.rejected += 1
            return (r, [], [])
        }
    }

    /// Applies one input message (both halves on this thread).
    func ingest(partition p: Int32, part: Partition, topic: InputTopic, message: KafkaMessage) -> (Rejection?, [Alert], [RiskChange]) {
        account(partition: p, topic: topic, message: message, apply(part: part, topic: topic, message: message))
    }

    /// Messages prepared before their duplicate-table lines are fetched together (see `MartState.warm`): 32
    /// gave 5-20% more events/s than one at a time in `undercurrent-bench ingest` (BENCHMARKS.md).
    public static let warmBatch = 32

    /// The per-partition half for a polled batch: partitions are shared out to up to `options.threads` threads
    /// as they come free; each partition's messages stay in order on one thread. Returns, per
    /// message, what it gave (nil: not for a partition or topic of this consumer).
    func applyBatch(_ messages: [KafkaMessage], startMs: Int64?) -> [Applied?] {
        // Each message's partition state and topic, looked up once (and only when they differ from the previous
        // message's: messages come in runs of one topic-partition).
        var groupOf: [Int32: Int] = [:]
        var byPartition: [[Int]] = []
        var targets = [(part: Partition, topic: InputTopic)?](repeating: nil, count: messages.count)
        var last: (partition: Int32, topicName: String, part: Partition?, topic: InputTopic?, group: Int)? = nil
        for i in messages.indices {
            let partition = messages[i].partition, topicName = messages[i].topic
            if last == nil || last!.partition != partition || last!.topicName != topicName {
                let part = partitions[partition], topic = topicOf[topicName]
                var group = -1
                if part != nil && topic != nil {
                    group = groupOf[partition] ?? byPartition.count
                    if group == byPartition.count {
                        groupOf[partition] = group
                        byPartition.append([])
                    }
                }
                last = (partition, topicName, part, topic, group)
            }
            guard let part = last!.part, let topic = last!.topic else { continue }
            targets[i] = (part, topic)
            byPartition[last!.group].append(i)
        }
        let groups = byPartition.sorted { $0.count > $1.count }
        let threads = max(1, min(options.threads, groups.count, messages.count / 64))
        // Each thread takes the next partition's messages, largest first, until none are left: a thread that
        // finishes early takes more (a fixed split left one thread idle for 14% of the run, measured).
        let resolved = targets
        let results = LaneResults(lanes: threads, groups: groups.count)
        let work = { [self] (lane: Int) in
            let started = ContinuousClock.now
            var out: [(Int, Applied)] = []
            var prepared: [MartState.Prepared] = []
            prepared.reserveCapacity(Self.warmBatch)
            while let g = results.nextGroup() {
                // A group is one partition's messages: prepared a slice at a time, the slice's duplicate-table
                // lines fetched together (`MartState.warm`), then applied in order.
                let group = groups[g]
                let part = resolved[group[0]]!.part
                var k = 0
                while k < group.count {
                    let slice = group[k..<min(k + Self.warmBatch, group.count)]
                    let m = messages.span  // (not `messages[i]`: that copies the message, a retain per field)
                    for i in slice { prepared.append(prepare(topic: resolved[i]!.topic, message: m[i], startMs: startMs)) }
                    part.state.warm(prepared.span)
                    for (j, i) in slice.enumerated() { out.append((i, apply(part: part, message: m[i], prepared[j]))) }
                    prepared.removeAll(keepingCapacity: true)
                    k = slice.endIndex
                }
            }
            results.store(lane, out, seconds: (ContinuousClock.now - started).seconds)
        }
        if threads == 1 {
            work(0)
        } else {
            // Each lane touches only its own partitions' states (see `apply`) and its own result slot.
            let box = UncheckedSendable(work)
            DispatchQueue.concurrentPerform(iterations: threads) { box.value($0) }
            summary.parallelBatches += 1
            summary.idleLaneSeconds += results.idleSeconds
        }
        var applied = [Applied?](repeating: nil, count: messages.count)
        for lane in results.take() { for (i, a) in lane { applied[i] = a } }
        return applied
    }

    // MARK: Kafka

    public func run(kafka: KafkaConfig, stop: StopSignal) throws {
        if let alertLoadError { throw alertLoadError }
        let started = ContinuousClock.now
        var config = kafka
        config["group.id"] = config["group.id"] ?? options.group
        // Prefetch: with librdkafka's default queued.min.messages (100,000) the fetcher of this consumer sat
        // idle for 0.3-0.5 s about once a second while lag was in the hundreds of thousands (measured with
        // `undercurrent-bench pipeline`); a deeper queue, bounded at 128 MiB, keeps it busy.
        for (key, value) in [("queued.min.messages", "1000000"), ("queued.max.messages.kbytes", "131072")] where config[key] == nil {
            config[key] = value
        }
        logger.info("connecting to Kafka", metadata: ["kafka.config": "\(config.redacted.sorted { $0.key < $1.key })"])
        let outputs = try KafkaProducer(config: kafka, logger: logger)
        let startOffsets = options.startTime.map { lookUpStartOffsets(at: $0, kafka: kafka) } ?? [:]
        let startMs = options.startTime?.ms
        let handler = RebalanceHandler(onAssign: { [self] tps in
            var offsets: [TopicPartition: KafkaOffset] = [:]
            if !tps.isEmpty { assignedFlag.store(true, ordering: .releasing) }
            adoptAlertState(for: Set(tps.filter { $0.topic == options.topics[.payments] }.map(\.partition)))
            // Alerting waits for every assigned payments partition (or `alertSourceWait`) before event time moves.
            if var engine = alertEngine {
                for tp in tps where tp.topic == options.topics[.payments] {
                    engine.hold(source: Int(tp.partition))
                    heldSince[Int(tp.partition)] = ContinuousClock.now
                }
                alertEngine = engine
            }
            openAll(tps.map(\.partition))
            for tp in tps {
                do {
                    let part = try open(tp.partition)
                    offsets[tp] = part.offsets[tp.topic].map { KafkaOffset($0) } ?? startOffsets[tp].map { KafkaOffset($0) } ?? .beginning
                } catch let error as CheckpointError {
                    loadError = error
                    offsets[tp] = .end
                } catch {}
            }
            return offsets
        }, onRevoke: { [self] tps in
            let numbers = Set(tps.map(\.partition))
            checkpointAll(outputs: outputs, stop: nil)
            if var engine = alertEngine {
                for tp in tps where tp.topic == options.topics[.payments] { engine.forget(source: Int(tp.partition)) }
                alertEngine = engine
            }
            finishCompactions(Array(numbers))
            for p in numbers { partitions[p] = nil }
        })
        let consumer = try KafkaConsumer(config: config, logger: logger, rebalance: handler)
        try consumer.subscribe(options.topics.values.sorted())
        var lastCheckpoint = ContinuousClock.now
        var lastMessage = ContinuousClock.now
        var lastReport = ContinuousClock.now
        var lastStallCheck = ContinuousClock.now
        var fruitlessRestarts = 0  // stall restarts since messages last came
        var reportedAccepted = 0
        while !stop.isStopped {
            let wasAssigned = !partitions.isEmpty
            let messages = try consumer.poll(maxMessages: options.pollBatch, timeout: .milliseconds(100), includeHeaders: options.probe != nil)
            if let loadError { throw loadError }
            if !wasAssigned && !partitions.isEmpty { lastMessage = ContinuousClock.now }  // idle time counts from assignment
            let applied = applyBatch(messages, startMs: startMs)
            for (m, a) in zip(messages, applied) {
                guard let a, let topic = topicOf[m.topic] else { continue }
                let (rejection, raised, risk) = account(partition: m.partition, topic: topic, message: m, a)
                if a.outcome == nil { continue }  // before the start time
                if let riskTopic = options.riskTopic {
                    for r in risk {
                        try outputs.send(ProducerMessage(topic: riskTopic, key: Array(r.customerID.utf8), value: Array(r.json.utf8),
                                                         timestampMs: r.asOf.ms))
                    }
                }
                for a in raised {
                    try outputs.send(ProducerMessage(topic: options.alertsTopic, key: Array(a.rule.utf8), value: Array(a.json.utf8),
                                                 headers: [KafkaHeader("alert-state", a.state.rawValue)], timestampMs: a.at.ms))
                }
                if let r = rejection {
                    // A value too large for the output producer goes in truncated, saying so, rather than stopping
                    // the consumer; the source coordinates find the original.
                    var headers = [KafkaHeader("dlq-reason", r.description), KafkaHeader("source-topic", m.topic),
                                   KafkaHeader("source-partition", String(m.partition)), KafkaHeader("source-offset", String(m.offset))]
                    var value = Array(m.value)
                    if value.count > options.deadLetterMaxBytes {
                        headers.append(KafkaHeader("dlq-truncated-from", String(value.count)))
                        value = Array(value.prefix(options.deadLetterMaxBytes))
                    }
                    try outputs.send(ProducerMessage(topic: options.deadLetterTopic, key: m.key.map { Array($0) }, value: value,
                                                 headers: headers, timestampMs: m.timestampMs))
                }
                options.probe?.applied(m)
            }
            let now = ContinuousClock.now
            if !messages.isEmpty {
                lastMessage = now
                fruitlessRestarts = 0
            }
            if !heldSince.isEmpty, var engine = alertEngine {
                let held = Set(engine.heldSources)
                for (source, since) in heldSince where !held.contains(source) || now - since >= options.alertSourceWait {
                    if held.contains(source) {
                        engine.forget(source: source)
                        logger.notice("alerting stops waiting for payments partition \(source): nothing from it in \(options.alertSourceWait)")
                    }
                    heldSince[source] = nil
                }
                alertEngine = engine
            }
            let due = partitions.values.contains { $0.sinceCheckpoint >= options.checkpointEvents }
            if due || now - lastCheckpoint >= options.checkpointInterval {
                checkpointAll(outputs: outputs, stop: stop)
                lastCheckpoint = ContinuousClock.now
            }
            if now - lastReport >= options.reportInterval {
                let taken = summary.accepted + summary.duplicates + summary.rejected + summary.skippedAfterUntil + summary.skippedBeforeStart
                let m = report(rate: Double(taken - reportedAccepted) / (now - lastReport).seconds, consumer: consumer)
                let worst = m.lag.max { $0.value < $1.value }
                logger.info("consuming", metadata: [
                    "marts.events_per_second": "\(Int(m.eventsPerSecond))", "marts.accepted": "\(m.summary.accepted)",
                    "marts.duplicates": "\(m.summary.duplicates)", "marts.dlq": "\(m.summary.rejected)", "marts.as_of": "\(m.asOf?.description ?? "-")",
                    "kafka.lag_total": "\(m.totalLag)", "kafka.lag_max": "\(worst.map { "\($0.key)=\($0.value)" } ?? "-")",
                    "kafka.partitions": "\(partitions.keys.sorted())",
                ])
                lastReport = now
                reportedAccepted = taken
            }
            // A quiet spell: check with the brokers that every partition really is at its end. librdkafka's
            // fetcher has been seen to stop on a partition after broker faults while its cached watermarks
            // said it was caught up; a seek to the next offset to apply restarts it.
            let quiet = now - lastMessage
            let idleExit = options.exitWhenIdle.map { quiet >= $0 } ?? false
            if !partitions.isEmpty && (idleExit || (quiet >= options.stallCheckInterval && now - lastStallCheck >= options.stallCheckInterval)) {
                lastStallCheck = now
                let restarted = restartStalledPartitions(consumer)
                if restarted > 0 && fruitlessRestarts < 3 {
                    fruitlessRestarts += 1
                    lastMessage = ContinuousClock.now
                } else if idleExit {
                    if restarted > 0 { logger.error("partitions still behind after \(fruitlessRestarts) restarts; exiting as idle anyway") }
                    break
                }
            }
        }
        checkpointAll(outputs: outputs, stop: stop)
        finishCompactions()
        try outputs.flush(timeout: .seconds(30))
        _ = report(rate: 0, consumer: consumer)
        consumer.close()
        summary.seconds = (ContinuousClock.now - started).seconds
    }

    /// Asks the brokers for the end of every assigned partition and seeks each one that has messages beyond
    /// the next offset to apply back to that offset; returns how many it restarted.
    func restartStalledPartitions(_ consumer: KafkaConsumer) -> Int {
        guard let assigned = try? consumer.assignment(), !assigned.isEmpty else { return 0 }
        var restarted = 0
        for (tp, marks) in consumer.queryWatermarks(assigned, timeout: .seconds(5)) {
            guard let part = partitions[tp.partition] else { continue }
            let next = part.offsets[tp.topic] ?? marks.low
            guard marks.high > max(next, marks.low) else { continue }
            logger.warning("\(tp) has \(marks.high - next) messages after offset \(next) but none came: restarting its fetch there")
            do {
                try consumer.seek(tp, to: KafkaOffset(max(next, marks.low)))
                restarted += 1
                summary.stalledPartitionRestarts += 1
            } catch {
                logger.warning("could not restart \(tp): \(error)")
            }
        }
        return restarted
    }

    /// Where each input partition starts at `time` (see `TimeSeek`); empty where the cluster cannot say,
    /// and those partitions are scanned from the earliest offset with earlier messages skipped.
    func lookUpStartOffsets(at time: Timestamp, kafka: KafkaConfig) -> [TopicPartition: Int64] {
        var partitions: [TopicPartition] = []
        do {
            let admin = try KafkaAdmin(config: kafka, logger: logger)
            for name in options.topics.values {
                for p in try admin.metadata(topic: name).first?.partitions ?? [] { partitions.append(TopicPartition(name, p)) }
            }
        } catch {
            logger.notice("cannot list the input partitions (\(error)); scanning from the earliest offset and skipping messages before \(time)")
            return [:]
        }
        return TimeSeek.offsets(at: time, partitions: partitions, kafka: kafka, logger: logger) ?? [:]
    }

    /// Appends alerts to `alerts.ndjson` in the state directory, where the dashboard reads them.
    func appendAlerts(_ raised: [Alert]) {
        guard !raised.isEmpty else { return }
        let url = options.stateDirectory.appendingPathComponent(AlertLog.fileName)
        let text = raised.map { $0.json + "\n" }.joined()
        do {
            try FileManager.default.createDirectory(at: options.stateDirectory, withIntermediateDirectories: true)
            // A file that cannot be created makes the open below throw, which is reported.
            if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
            let h = try FileHandle(forWritingTo: url)
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: Data(text.utf8))
        } catch {
            logger.warning("cannot append to \(url.path): \(error)")
        }
    }

    public var asOf: Timestamp? { partitions.values.compactMap(\.state.maxTime).max() }

    /// Refreshes the metrics snapshot (and the metrics file) and returns it.
    @discardableResult
    func report(rate: Double, consumer: KafkaConsumer?) -> ConsumerMetrics {
        var m = ConsumerMetrics()
        m.summary = summary
        m.eventsPerSecond = rate
        m.asOf = asOf
        m.lag = consumer?.lag() ?? [:]
        m.checkpointFailures = checkpointFailures
        m.checkpointSecondsTotal = summary.checkpointSeconds
        m.lastCheckpointSeconds = lastCheckpointSeconds
        m.kafkaClientErrors = consumer?.clientErrorCount ?? 0

        metricsSnapshot.withLock { $0 = m }
        if let file = options.metricsFile {
            do { try Data(m.prometheusText.utf8).write(to: file, options: .atomic) } catch {
                logger.warning("cannot write metrics to \(file.path): \(error)")
            }
        }
        return m
    }

    // MARK: Archive

    /// Feeds an archive through the same engine, without Kafka. Records are assigned to partition numbers
    /// as the producers' murmur2 partitioner would with `partitionCount` partitions. A record without an
    /// offset gets its position among its topic-partition's records in the file, so a restarted run skips
    /// what its checkpoints already hold, exactly as a Kafka run resumes at its offsets.
    public func run(archive path: String, partitionCount: Int, stop: StopSignal) throws {
        if let alertLoadError { throw alertLoadError }
        if let loaded = pendingAlertState {
            // One process reads the whole archive: the engine covers whichever partitions it had seen.
            adoptAlertState(for: Set((loaded.offsets[options.topics[.payments] ?? "payments"] ?? [:]).keys))
        }
        let started = ContinuousClock.now
        var positions: [TopicPartition: Int64] = [:]
        for item in try ArchiveReader(path: path) {
            if stop.isStopped { break }
            let record: ArchiveRecord
            switch item {
            case let .success(r): record = r
            case let .failure(e):
                logger.warning("\(e)")
                summary.rejected += 1
                continue
            }
            if let until = options.until, let t = record.timestamp, t > until { break }
            guard let topic = topicOf[record.topic] ?? InputTopic(rawValue: record.topic) else { continue }
            let p = Int32(record.partition ?? Int32(Murmur2.partition(for: record.key ?? [], partitionCount: partitionCount)))
            let part = try open(p)
            let tp = TopicPartition(record.topic, p)
            let offset = record.offset ?? positions[tp, default: 0]
            positions[tp] = offset + 1
            if offset < part.offsets[record.topic] ?? 0 { continue }  // already in the checkpoint
            let message = KafkaMessage(topic: record.topic, partition: p, offset: offset, key: record.key.map { $0[...] },
                                       value: record.value[...], timestampMs: record.timestamp?.ms)
            if let r = ingest(partition: p, part: part, topic: topic, message: message).0 {
                logger.debug("rejected archive record: \(r)")
            }
            if part.sinceCheckpoint >= options.checkpointEvents { checkpointAll(outputs: nil, stop: stop) }
        }
        checkpointAll(outputs: nil, stop: stop)
        finishCompactions()
        report(rate: 0, consumer: nil)
        summary.seconds = (ContinuousClock.now - started).seconds
    }
}

/// Per-lane results of `applyBatch`, each lane written by one thread, read after they all finished.
private final class LaneResults: @unchecked Sendable {
    private let lock = NSLock()
    private var lanes: [[(Int, MartsConsumer.Applied)]]
    private var seconds: [Double]
    private let groups: Int
    private var taken = 0
    init(lanes: Int, groups: Int) {
        self.lanes = Array(repeating: [], count: lanes)
        seconds = Array(repeating: 0, count: lanes)
        self.groups = groups
    }
    /// The next group of messages to apply, or nil when all are taken.
    func nextGroup() -> Int? {
        lock.withLock {
            guard taken < groups else { return nil }
            defer { taken += 1 }
            return taken
        }
    }
    func store(_ lane: Int, _ results: [(Int, MartsConsumer.Applied)], seconds s: Double) {
        lock.withLock {
            lanes[lane] = results
            seconds[lane] = s
        }
    }
    func take() -> [[(Int, MartsConsumer.Applied)]] { lock.withLock { lanes } }
    /// How long the fastest lane waited for the slowest.
    var idleSeconds: Double { lock.withLock { (seconds.max() ?? 0) - (seconds.min() ?? 0) } }
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
