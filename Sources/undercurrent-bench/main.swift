import Foundation
import Synchronization
import Events
import Kafka
import Marts
import Simulation
import Checkpoints
import Logging
import Config
import Consumer
import Streams
import Postgres
import PostgresSink

// Usage: undercurrent-bench kafka [MESSAGES] [PARTITIONS]
// Mirrors Benchmarks/raw_kafka_bench.c message for message, through the Swift layer.

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

let logger: Logger = {
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    return logger
}()

func kafkaBench(messages n: Int, partitions: Int) throws {
    let broker = try EmbeddedBroker(brokers: 1, logger: logger)
    try broker.createTopic("bench", partitions: partitions)
    let config = KafkaConfig(bootstrapServers: broker.bootstrapServers)
    let producer = try KafkaProducer(config: config, logger: logger)
    var value = [UInt8](repeating: UInt8(ascii: "x"), count: 250)
    let headers = [KafkaHeader("event-type", "payment.succeeded"), KafkaHeader("schema", "1")]
    let keys = (0..<5000).map { Array("cus_\($0)".utf8) }
    let start = ContinuousClock.now
    for i in 0..<n {
        for j in 0..<8 { value[j] = UInt8(truncatingIfNeeded: i >> (8 * j)) }
        try producer.send(ProducerMessage(topic: "bench", key: keys[i % 5000], value: value, headers: headers,
                                          timestampMs: 1_741_947_751_123 + Int64(i)))
    }
    try producer.flush()
    let produceTime = seconds(ContinuousClock.now - start)
    let stats = producer.statistics
    print(String(format: "swift-layer produce: %d messages in %.3f s = %.0f msg/s (delivered %d, failed %d)",
                 n, produceTime, Double(n) / produceTime, stats.delivered, stats.failed))

    let consumer = try KafkaConsumer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["group.id": "bench"]), logger: logger)
    try consumer.assign(Dictionary(uniqueKeysWithValues: (0..<partitions).map { (TopicPartition("bench", Int32($0)), KafkaOffset.beginning) }))
    var got = 0
    var bytes = 0
    let cstart = ContinuousClock.now
    while got < n && ContinuousClock.now - cstart < .seconds(120) {
        for m in try consumer.poll(maxMessages: 1000, timeout: .milliseconds(200), includeHeaders: false) {
            got += 1
            bytes += m.value.count
        }
    }
    let consumeTime = seconds(ContinuousClock.now - cstart)
    print(String(format: "swift-layer consume: %d messages in %.3f s = %.0f msg/s", got, consumeTime, Double(got) / consumeTime))
    consumer.close()
    withExtendedLifetime(broker) {}
}

/// Simulation plus JSON encoding to memory, on one core.
func simBench(customers: Int) throws {
    let config = try ConfigLoader.load(scenario: "baseline", location: try ConfigLoader.location(nil))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    var world = try World(SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24)))
    var buffer = [UInt8]()
    buffer.reserveCapacity(1 << 16)
    var n = 0, bytes = 0
    let t0 = ContinuousClock.now
    var encoder = EventEncoder.Reusable()
    // As the producers do it: the next event is encoded where it lies in the world.
    while true {
        buffer.removeAll(keepingCapacity: true)
        guard world.encodeNext(&encoder, into: &buffer) else { break }
        bytes += buffer.count
        n += 1
    }
    let s = seconds(ContinuousClock.now - t0)
    print(String(format: "simulate+encode: %d events (%d customers, 24 months, %.0f bytes/event) in %.2f s = %.0f events/s",
                 n, customers, Double(bytes) / Double(n), s, Double(n) / s))
}

/// The same JSON decoded by Foundation into a Codable struct (no validation), for comparison.
struct FoundationEnvelope: Decodable {
    var schema: Int
    var event_id: String
    var type: String
    var occurred_at: String
    var customer_id: String
    var plan: String?
    var amount_cents: Int64?
    var attempt: Int?
    var invoice_id: String?
    var failure_reason: String?
    var feature: String?
    var core_value: Bool?
}

/// Decoding, validation and mart updates from an in-memory batch, on one core.
func martsBench(customers: Int) throws {
    let config = try ConfigLoader.load(scenario: "payment-incident", location: try ConfigLoader.location(nil))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    let world = try World(SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24)))
    var values: [(ArraySlice<UInt8>, InputTopic, ArraySlice<UInt8>)] = []
    for e in world { values.append((EventEncoder.encode(e)[...], e.topic, Array(e.customerID.utf8)[...])) }
    // Each measurement is the best of three rounds on a fresh state: this machine's neighbours add noise.
    var best = (0.0, 0.0, 0.0)
    var accepted = 0
    let decoded = values.map { try! EventDecoder.decode($0.0, topic: $0.1, key: $0.2).get() }
    let messages = values.map { BenchMessage(value: $0.0, topic: $0.1, key: $0.2) }
    let batch = benchBatch()
    for _ in 0..<3 {
        var state = MartState()
        let t0 = ContinuousClock.now
        ingestAll(&state, messages, batch: batch)
        best.0 = max(best.0, Double(values.count) / seconds(ContinuousClock.now - t0))
        accepted = state.accepted
        var state2 = MartState()
        let t3 = ContinuousClock.now
        for e in decoded { _ = state2.apply(e, valueHash: 1) }
        best.1 = max(best.1, Double(decoded.count) / seconds(ContinuousClock.now - t3))
        let t2 = ContinuousClock.now
        var decodedOnly = 0
        for (v, t, k) in values { if case .success = EventDecoder.decode(v, topic: t, key: k) { decodedOnly += 1 } }
        precondition(decodedOnly == values.count)
        best.2 = max(best.2, Double(values.count) / seconds(ContinuousClock.now - t2))
    }
    print(String(format: "decode+validate+marts (batches of %d): %d events, best of 3: %.0f events/s (accepted %d)", batch, values.count, best.0, accepted))
    print(String(format: "marts only (pre-decoded events): best of 3: %.0f events/s", best.1))
    print(String(format: "EventDecoder (decode+validate only): best of 3: %.0f events/s", best.2))
    let decoder = JSONDecoder()
    let sample = values.prefix(200_000)
    let t1 = ContinuousClock.now
    var ok = 0
    for (v, _, _) in sample { if (try? decoder.decode(FoundationEnvelope.self, from: Data(v))) != nil { ok += 1 } }
    let s1 = seconds(ContinuousClock.now - t1)
    print(String(format: "Foundation JSONDecoder (decode only, %d events): %.2f s = %.0f events/s", sample.count, s1, Double(sample.count) / s1))
}

struct BenchMessage {
    let value: ArraySlice<UInt8>
    let topic: InputTopic
    let key: ArraySlice<UInt8>
}

/// Messages per prepared batch: BENCH_BATCH, else the consumer's.
func benchBatch() -> Int { ProcessInfo.processInfo.environment["BENCH_BATCH"].flatMap(Int.init) ?? MartsConsumer.warmBatch }

/// `MartState.ingest` on each message in turn (`batch` ≤ 1), or in batches: prepared, warmed, committed.
func ingestAll(_ state: inout MartState, _ messages: [BenchMessage], batch: Int) {
    if batch <= 1 {
        for m in messages { _ = state.ingest(value: m.value, topic: m.topic, key: m.key) }
        return
    }
    var prepared: [MartState.Prepared] = []
    prepared.reserveCapacity(batch)
    var i = 0
    while i < messages.count {
        let end = min(i + batch, messages.count)
        let m = messages.span  // (read through a span: `messages[j]` copied each message, two retains and releases)
        for j in i..<end { prepared.append(MartState.prepare(value: m[j].value, topic: m[j].topic, key: m[j].key)) }
        state.warm(prepared.span)
        for j in prepared.indices { _ = state.commit(prepared[j]) }
        prepared.removeAll(keepingCapacity: true)
        i = end
    }
}

/// Resident memory of this process, from /proc.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * 4096 : 0
}

/// Customer i's seven events (round 0: signup, subscription, invoice, payment, paid invoice, two feature uses),
/// or one more feature use (round > 0), for the checkpoint and restart benchmarks.
func benchEvents(_ i: Int, _ round: Int) -> [Event] {
    let start = Timestamp(year: 2025, month: 1, day: 1)
    let id = "cus_\(i)"
    let t = start.adding(ms: Int64(i % 86_400_000))
    if round > 0 {
        return [Event(eventID: "\(id):r\(round)", occurredAt: t.adding(days: 40), customerID: id,
                      payload: .featureUsed(feature: "report_share", coreValue: true, sessionID: "s\(round)"))]
    }
    return [
        Event(eventID: "\(id):0", occurredAt: t, customerID: id,
              payload: .customerSignedUp(plan: .free, industry: "SaaS", companySize: .smb, country: "US", channel: "organic")),
        Event(eventID: "\(id):1", occurredAt: t.adding(days: 1), customerID: id, payload: .subscriptionStarted(subscriptionID: "sub_\(i)", plan: .standard, mrrCents: 4900)),
        Event(eventID: "\(id):2", occurredAt: t.adding(days: 1), customerID: id,
              payload: .invoiceIssued(invoiceID: "in_\(i)", subscriptionID: "sub_\(i)", plan: .standard, amountCents: 4900, currency: "USD",
                                      periodStart: Day(t), periodEnd: Day(t.adding(days: 30)))),
        Event(eventID: "\(id):3", occurredAt: t.adding(days: 1), customerID: id,
              payload: .paymentSucceeded(paymentID: "pay_\(i)", invoiceID: "in_\(i)", plan: .standard, amountCents: 4900, currency: "USD", attempt: 1)),
        Event(eventID: "\(id):4", occurredAt: t.adding(days: 1), customerID: id, payload: .invoicePaid(invoiceID: "in_\(i)", plan: .standard, amountCents: 4900, currency: "USD", attempts: 1)),
        Event(eventID: "\(id):5", occurredAt: t.adding(days: 2), customerID: id, payload: .featureUsed(feature: "login", coreValue: false, sessionID: "s0")),
        Event(eventID: "\(id):6", occurredAt: t.adding(days: 3), customerID: id, payload: .featureUsed(feature: "dashboard_build", coreValue: true, sessionID: "s1")),
    ]
}

/// Checkpoint and restart costs of a state with `customers` customers, 1% of them changed.
func checkpointBench(customers: Int) throws {
    let before = residentBytes()
    var state = MartState()
    var n = 0
    for i in 0..<customers { for e in benchEvents(i, 0) { _ = state.apply(e, valueHash: UInt64(n)); n += 1 } }
    let after = residentBytes()
    let seenBytes = state.seen.memoryBytes
    print(String(format: "state: %d customers, %d events; resident memory +%.0f MB = %.0f bytes per customer, of which the id table %.0f bytes (%.1f bytes per event)",
                 customers, n, Double(after - before) / 1e6, Double(after - before) / Double(customers),
                 Double(seenBytes) / Double(customers), Double(seenBytes) / Double(n)))
    print("inline sizes (stride, bytes): CustomerState \(MemoryLayout<CustomerState>.stride), InvoiceState \(MemoryLayout<InvoiceState>.stride), "
          + "SubscriptionEvent \(MemoryLayout<SubscriptionEvent>.stride), MonthFlags \(MemoryLayout<MonthFlags>.stride)")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uc-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = CheckpointStore(stateDirectory: dir, partition: 0)
    store.compactAfterBytes = Int.max
    _ = state.takeChanges()
    let t0 = ContinuousClock.now
    try store.compact(state, offsets: ["billing": Int64(n)])
    print(String(format: "full snapshot: %.2f s, %.0f MB", seconds(ContinuousClock.now - t0), Double(store.snapshotBytes) / 1e6))
    for round in 1...3 {
        for i in stride(from: round, to: customers, by: 100) { for e in benchEvents(i, round) { _ = state.apply(e, valueHash: 7); n += 1 } }
        let t1 = ContinuousClock.now
        let bytes = try store.write(&state, offsets: ["billing": Int64(n)])
        print(String(format: "checkpoint with 1%% of customers changed: %.1f ms, %d bytes", seconds(ContinuousClock.now - t1) * 1000, bytes))
    }
    // A compaction in the background: what the consuming thread waits for is the checkpoint that starts it
    // and the next changes (the first write to the shared state copies its tables).
    for i in stride(from: 4, to: customers, by: 100) { for e in benchEvents(i, 4) { _ = state.apply(e, valueHash: 7); n += 1 } }
    let t3 = ContinuousClock.now
    try store.write(&state, offsets: ["billing": Int64(n)])
    try store.compactInBackground(state, offsets: ["billing": Int64(n)])
    let started = seconds(ContinuousClock.now - t3)
    let t4 = ContinuousClock.now
    for i in stride(from: 5, to: customers, by: 100) { for e in benchEvents(i, 5) { _ = state.apply(e, valueHash: 7); n += 1 } }
    let firstChanges = seconds(ContinuousClock.now - t4)
    let t5 = ContinuousClock.now
    try store.finishCompaction()
    print(String(format: "background compaction: the checkpoint starting it %.1f ms, the next 1%% of changes %.0f ms (copy-on-write), then %.2f s more until the snapshot was in place",
                 started * 1000, firstChanges * 1000, seconds(ContinuousClock.now - t5)))
    try store.write(&state, offsets: ["billing": Int64(n)])
    let t2 = ContinuousClock.now
    let loaded = try CheckpointStore(stateDirectory: dir, partition: 0).load()
    print(String(format: "restart: loading the new snapshot + 1 delta: %.2f s (%d customers)", seconds(ContinuousClock.now - t2), loaded?.state.customers.count ?? 0))
}

/// Restart of a state spread over partitions: every partition's snapshot loaded one after the other, and
/// all at once (one per core), as the consumer does on assignment.
func restartBench(customers: Int, partitions: Int) throws {
    var states = [MartState](repeating: MartState(), count: partitions)
    var n = 0
    for i in 0..<customers { for e in benchEvents(i, 0) { _ = states[i % partitions].apply(e, valueHash: UInt64(n)); n += 1 } }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uc-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    for (p, state) in states.enumerated() {
        try CheckpointStore(stateDirectory: dir, partition: Int32(p)).compact(state, offsets: ["billing": Int64(n)])
    }
    states = []
    let stores = { (0..<partitions).map { CheckpointStore(stateDirectory: dir, partition: Int32($0)) } }
    let t0 = ContinuousClock.now
    var loaded = 0
    for store in stores() { loaded += try store.load()?.state.customers.count ?? 0 }
    let sequential = seconds(ContinuousClock.now - t0)
    let t1 = ContinuousClock.now
    let loadedStates = try CheckpointStore.loadAll(stores()).compactMap { try $0.get()?.state }
    let all = loadedStates.reduce(0) { $0 + $1.customers.count }
    print(String(format: "restart, %d customers in %d partitions: one after the other %.2f s (%d customers), in parallel %.2f s (%d customers)",
                 customers, partitions, sequential, loaded, seconds(ContinuousClock.now - t1), all))
    // What `marts export` and the dashboard do next: merge the partitions into one snapshot, then build customer 360.
    let rss0 = residentBytes()
    let t2 = ContinuousClock.now
    let snapshot = MartSnapshot(loadedStates)
    let merged = seconds(ContinuousClock.now - t2)
    let rss1 = residentBytes()
    let t3 = ContinuousClock.now
    let rows = snapshot.customer360().rows.count
    print(String(format: "snapshot of %d customers: merged in %.2f s, +%d MB resident; customer 360 (%d rows) in %.2f s",
                 snapshot.customers.count, merged, (rss1 - rss0) >> 20, rows, seconds(ContinuousClock.now - t3)))
}

/// User plus system CPU time of every thread of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Simulation produced to the embedded broker (one producer, all topics), then consumed by the marts
/// consumer with checkpoints: events/s of each stage. With `consume` false, the first stage alone, with the
/// process's CPU time while producing.
func pipelineBench(customers: Int, partitions: Int, consume: Bool = true) throws {
    let broker = try EmbeddedBroker(brokers: 1, logger: logger)
    for t in ["billing", "payments", "engagement", "events-dlq"] { try broker.createTopic(t, partitions: partitions) }
    let config = try ConfigLoader.load(scenario: "baseline", location: try ConfigLoader.location(nil))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    let params = SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24))
    // BENCH_PRODUCER="key=value,…" overrides producer properties (e.g. compression.type=none), for comparisons.
    let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
    var producerConfig = kafka
    for pair in (ProcessInfo.processInfo.environment["BENCH_PRODUCER"] ?? "").split(separator: ",") {
        let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
        if kv.count == 2 { producerConfig[kv[0]] = kv[1] }
    }
    let producer = try KafkaProducer(config: producerConfig, logger: logger)
    let run = ProducerRun(topics: Set(InputTopic.allCases), pacing: .backfill, label: "bench")
    let cpuBefore = processCPUSeconds()
    let summary = try run.run(world: try World(params), simulationStart: start, producer: producer,
                              stop: StopSignal(handleSignals: false), report: { _ in }, notice: { print($0) })
    print(String(format: "simulate+produce (one producer, all topics, %d partitions): %d events delivered in %.2f s = %.0f events/s",
                 partitions, summary.delivered, summary.seconds, Double(summary.delivered) / summary.seconds))
    if !consume {
        // CPU time of the whole process (every thread: simulation, sending, librdkafka's and the broker's), which
        // drifts less with this shared machine than the wall-clock rate.
        let cpu = processCPUSeconds() - cpuBefore
        print(String(format: "process CPU time while producing: %.2f s (%.2f µs an event)", cpu, cpu * 1e6 / Double(summary.delivered)))
        return
    }
    // The ceiling: the same messages drained by a plain consumer that does nothing with them.
    let drain = try KafkaConsumer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["group.id": "drain-\(UUID().uuidString.prefix(6))", "auto.offset.reset": "earliest"]),
                                  logger: logger)
    try drain.subscribe(["billing", "payments", "engagement"])
    var drained = 0
    var drainStart: ContinuousClock.Instant?
    let drainDeadline = ContinuousClock.now + .seconds(120)
    while drained < summary.delivered && ContinuousClock.now < drainDeadline {
        let batch = try drain.poll(maxMessages: 5000, timeout: .milliseconds(100), includeHeaders: false)
        if !batch.isEmpty && drainStart == nil { drainStart = ContinuousClock.now }
        drained += batch.count
    }
    let drainSeconds = drainStart.map { seconds(ContinuousClock.now - $0) } ?? 0
    drain.close()
    print(String(format: "drain (plain consumer, nothing applied): %d messages in %.2f s = %.0f messages/s", drained, drainSeconds,
                 Double(drained) / drainSeconds))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("uc-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var options = MartsConsumer.Options(stateDirectory: dir)
    options.exitWhenIdle = .seconds(2)
    if let threads = ProcessInfo.processInfo.environment["BENCH_THREADS"].flatMap(Int.init) { options.threads = threads }
    if let batch = ProcessInfo.processInfo.environment["BENCH_POLL_BATCH"].flatMap(Int.init) { options.pollBatch = batch }
    options.group = "bench-\(UUID().uuidString.prefix(6))"
    let consumer = MartsConsumer(options: options, logger: logger)
    // Time from the first message to the last: watch the consumer's progress from another thread.
    let firstAndLast = Mutex<(ContinuousClock.Instant?, ContinuousClock.Instant?)>((nil, nil))
    let watching = Atomic<Bool>(true)
    let watcher = Thread {
        var last = 0
        while watching.load(ordering: .relaxed) {
            let p = consumer.progress
            if p > last {
                let now = ContinuousClock.now
                firstAndLast.withLock { if $0.0 == nil { $0.0 = now }; $0.1 = now }
                last = p
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }
    watcher.start()
    try consumer.run(kafka: kafka, stop: StopSignal(handleSignals: false))
    watching.store(false, ordering: .relaxed)
    let (first, last) = firstAndLast.withLock { $0 }
    let span = seconds(last! - first!)
    print(String(format: "consume into marts (decode, validate, marts, checkpoints every 2 s): %d events in %.2f s = %.0f events/s, %d checkpoints (%.2f s), %d risk changes, %d batches on 2+ threads (a thread idle %.2f s waiting for the other)",
                 consumer.summary.accepted, span, Double(consumer.summary.accepted) / span, consumer.summary.checkpoints,
                 consumer.summary.checkpointSeconds, consumer.summary.riskChanges, consumer.summary.parallelBatches,
                 consumer.summary.idleLaneSeconds))
}

/// The PostgreSQL sink against a real server: the first full load of `customers` customers over
/// `partitions` partitions, then checkpoints with 1% and 10% of the customers changed (checkpoint to
/// visible = the sink's commit), and the same changed rows written row by row (a prepared
/// `INSERT … ON CONFLICT` per row, one transaction) as the baseline.
func postgresBench(uri: String, customers: Int, partitions: Int) throws {
    var states = Array(repeating: MartState(), count: partitions)
    var n = Array(repeating: Int64(0), count: partitions)
    let t0 = ContinuousClock.now
    for i in 0..<customers {
        for e in benchEvents(i, 0) { _ = states[i % partitions].apply(e, valueHash: UInt64(n[i % partitions])); n[i % partitions] += 1 }
    }
    for p in 0..<partitions { _ = states[p].takeChanges() }
    print(String(format: "states: %d customers in %d partitions built in %.1f s", customers, partitions, seconds(ContinuousClock.now - t0)))
    let db = try PostgresConnection(uri: uri)
    try db.execute("DROP SCHEMA IF EXISTS undercurrent CASCADE")
    var sinkOptions = PostgresSink.Options(uri: uri)
    let env = ProcessInfo.processInfo.environment
    if let rows = env["BENCH_CHUNK_ROWS"].flatMap(Int.init) { sinkOptions.chunkRows = rows }
    let sink = try PostgresSink(options: sinkOptions, logger: logger)
    func view(previous: [Int64], changed: [[String]]) -> [CheckpointedPartition] {
        (0..<partitions).map { p in
            CheckpointedPartition(number: Int32(p), state: states[p], offsets: ["billing": n[p]],
                                  previous: StatePosition(offsets: ["billing": previous[p]], taken: max(0, previous[p])),
                                  changedCustomers: changed[p])
        }
    }
    let t1 = ContinuousClock.now
    sink.checkpointed(view(previous: Array(repeating: -1, count: partitions), changed: Array(repeating: [], count: partitions)))
    let load = seconds(ContinuousClock.now - t1)
    guard sink.commits == 1 else { throw BenchError("the first load did not commit") }
    print(String(format: "first full load: %d customer rows in %.2f s = %.0f rows/s", sink.customerRowsWritten, load, Double(sink.customerRowsWritten) / load))
    var round = 0
    var sinkRate: [Int: Double] = [:]
    for share in [100, 10, 100, 10] {
        round += 1
        let before = n
        let at = Timestamp(year: 2025, month: 1, day: 5).adding(ms: Int64(round) * 60_000)
        for i in stride(from: round % share, to: customers, by: share) {
            let e = Event(eventID: "cus_\(i):r\(round)", occurredAt: at, customerID: "cus_\(i)",
                          payload: .featureUsed(feature: "report_share", coreValue: true, sessionID: "r\(round)"))
            _ = states[i % partitions].apply(e, valueHash: UInt64(1000 + round))
            n[i % partitions] += 1
        }
        let changed = (0..<partitions).map { states[$0].changedCustomerIDs }
        for p in 0..<partitions { _ = states[p].takeChanges() }
        let rowsBefore = sink.customerRowsWritten
        let phasesBefore = sink.phaseSeconds
        let t2 = ContinuousClock.now
        sink.checkpointed(view(previous: before, changed: changed))
        let took = seconds(ContinuousClock.now - t2)
        let rows = sink.customerRowsWritten - rowsBefore
        sinkRate[share] = max(sinkRate[share] ?? 0, Double(rows) / took)
        let phases = sink.phaseSeconds.filter { $0.value - (phasesBefore[$0.key] ?? 0) >= 0.0005 }.sorted { $0.key < $1.key }
            .map { "\($0.key) \(Int((($0.value - (phasesBefore[$0.key] ?? 0)) * 1000).rounded()))" }.joined(separator: ", ")
        print(String(format: "checkpoint with %d%% changed: %d rows, checkpoint to visible %.0f ms = %.0f changed rows/s",
                     100 / share, rows, took * 1000, Double(rows) / took) + " (ms: \(phases))")
    }
    print("sink phases (s): " + sink.phaseSeconds.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2f", $0.value))" }.joined(separator: ", "))
    // The baseline: the last round's changed rows again, one prepared statement per row.
    let cols = MartSnapshot.customer360Columns
    let placeholders = (1...cols.count).map { "$\($0)" }.joined(separator: ", ")
    let set = cols.dropFirst().map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")
    try db.prepare("row", "INSERT INTO undercurrent.mart_customer_360 VALUES (\(placeholders)) ON CONFLICT (customer_id) DO UPDATE SET \(set)",
                   parameterCount: cols.count)
    let asOf = states.compactMap(\.maxTime).max()!
    var rows: [[String?]] = []
    for i in stride(from: 0, to: customers, by: 10) {
        let row = states[i % partitions].customers.read("cus_\(i)") { MartSnapshot.customer360Row("cus_\(i)", $0, asOf: asOf) }!
        rows.append(row.map { v -> String? in
            switch v {
            case let .int(x): String(x)
            case let .rate(r): r.map { $0.description }
            case let .text(s): s
            case let .bool(b): b ? "true" : "false"
            case let .time(t): t?.description
            case .null: nil
            }
        })
    }
    do {
        let at = Timestamp(ms: asOf.ms)
        var made = 0
        let tr = ContinuousClock.now
        for i in stride(from: 0, to: customers, by: 10) {
            let id = "cus_\(i)"
            if let (row, n) = states[i % partitions].customers.read(id, { c in
                (MartSnapshot.customer360Row(id, c, asOf: at), MartSnapshot.customer360NextChange(c, asOf: at)) }) {
                made += row.count + (n == nil ? 0 : 1)
            }
        }
        let tRows = seconds(ContinuousClock.now - tr)
        let tr2 = ContinuousClock.now
        for i in stride(from: 0, to: customers, by: 10) {
            let id = "cus_\(i)"
            made += states[i % partitions].customers.read(id, { c in Int(c.invoicesIssued) }) ?? 0
        }
        let tRead = seconds(ContinuousClock.now - tr2)
        print(String(format: "client side, per changed row: read+row+next %.2f us, read alone %.2f us (%d)", tRows * 1e6 / Double(customers / 10), tRead * 1e6 / Double(customers / 10), made))
    }
    let t3 = ContinuousClock.now
    try db.execute("BEGIN")
    for r in rows { try db.executePrepared("row", r) }
    try db.execute("COMMIT")
    let baseline = Double(rows.count) / seconds(ContinuousClock.now - t3)
    print(String(format: "baseline, row by row: %d rows in %.2f s = %.0f rows/s; the sink's bulk path (10%% changed) %.0f rows/s = %.1fx",
                 rows.count, seconds(ContinuousClock.now - t3), baseline, sinkRate[10] ?? 0, (sinkRate[10] ?? 0) / baseline))
}

let args = CommandLine.arguments.dropFirst()
do {
    switch args.first {
    case "sim":
        try simBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 20_000)
    case "ingest":
        // Only `MartState.ingest`, ROUNDS (5) rounds on fresh states of CUSTOMERS (5000) customers, for profilers.
        let config = try ConfigLoader.load(scenario: "payment-incident", location: try ConfigLoader.location(nil))
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let customers = args.dropFirst().first.flatMap(Int.init) ?? 5000
        let rounds = args.dropFirst(2).first.flatMap(Int.init) ?? 5
        let world = try World(SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24)))
        var values: [(ArraySlice<UInt8>, InputTopic, ArraySlice<UInt8>)] = []
        for e in world { values.append((EventEncoder.encode(e)[...], e.topic, Array(e.customerID.utf8)[...])) }
        let messages = values.map { BenchMessage(value: $0.0, topic: $0.1, key: $0.2) }
        let batch = benchBatch()
        for _ in 0..<rounds {
            var state = MartState()
            let t0 = ContinuousClock.now
            ingestAll(&state, messages, batch: batch)
            print(String(format: "ingest: %d events, %.0f events/s", values.count, Double(values.count) / seconds(ContinuousClock.now - t0)))
        }
    case "marts":
        try martsBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 10_000)
    case "checkpoint":
        try checkpointBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 1_000_000)
    case "restart":
        try restartBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 1_000_000,
                         partitions: args.dropFirst(2).first.flatMap(Int.init) ?? 12)
    case "pipeline":
        try pipelineBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 5000,
                          partitions: args.dropFirst(2).first.flatMap(Int.init) ?? 12)
    case "produce":
        // The pipeline's first stage alone (simulate + encode + produce), with the process's CPU time.
        try pipelineBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 5000,
                          partitions: args.dropFirst(2).first.flatMap(Int.init) ?? 12, consume: false)
    case "postgres":
        guard let uri = args.dropFirst().first else { throw BenchError("usage: undercurrent-bench postgres URI [CUSTOMERS] [PARTITIONS]") }
        try postgresBench(uri: uri, customers: args.dropFirst(2).first.flatMap(Int.init) ?? 1_000_000,
                          partitions: args.dropFirst(3).first.flatMap(Int.init) ?? 12)
    case "kafka":
        let n = args.dropFirst().first.flatMap(Int.init) ?? 1_000_000
        let p = args.dropFirst(2).first.flatMap(Int.init) ?? 6
        try kafkaBench(messages: n, partitions: p)
    default:
        FileHandle.standardError.write(Data("usage: undercurrent-bench kafka [MESSAGES] [PARTITIONS] | sim [CUSTOMERS] | ingest [CUSTOMERS] [ROUNDS] | marts [CUSTOMERS] | checkpoint [CUSTOMERS] | restart [CUSTOMERS] [PARTITIONS] | pipeline [CUSTOMERS] [PARTITIONS] | produce [CUSTOMERS] [PARTITIONS] | postgres URI [CUSTOMERS] [PARTITIONS]\n".utf8))
        exit(64)
    }
} catch {
    FileHandle.standardError.write(Data("undercurrent-bench: \(error)\n".utf8))
    exit(1)
}

/// A benchmark that cannot go on: printed as `undercurrent-bench: <description>`.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
