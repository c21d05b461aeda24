import Foundation
import Events
import Kafka
import Marts
import Simulation
import Logging
import UndercurrentCLI

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
        withUnsafeBytes(of: i) { raw in for j in 0..<8 { value[j] = raw[j] } }
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
    let config = try ConfigLoader.load(scenario: "baseline", configDir: try ConfigLoader.directory(nil))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    var world = try World(SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24)))
    var buffer = [UInt8]()
    buffer.reserveCapacity(1 << 16)
    var n = 0, bytes = 0
    let t0 = ContinuousClock.now
    while let e = world.next() {
        buffer.removeAll(keepingCapacity: true)
        EventEncoder.encode(e, into: &buffer)
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
    let config = try ConfigLoader.load(scenario: "payment-incident", configDir: try ConfigLoader.directory(nil))
    let start = Timestamp(year: 2024, month: 1, day: 1)
    let world = try World(SimulationParameters(config: config, seed: 42, customers: customers, start: start, end: start.addingMonths(24)))
    var values: [(ArraySlice<UInt8>, InputTopic, ArraySlice<UInt8>)] = []
    for e in world { values.append((EventEncoder.encode(e)[...], e.topic, Array(e.customerID.utf8)[...])) }
    var state = MartState()
    let t0 = ContinuousClock.now
    for (v, t, k) in values { _ = state.ingest(value: v, topic: t, key: k) }
    let s = seconds(ContinuousClock.now - t0)
    print(String(format: "decode+validate+marts: %d events in %.2f s = %.0f events/s (accepted %d)", values.count, s, Double(values.count) / s, state.accepted))
    let decoded = values.map { try! EventDecoder.decode($0.0, topic: $0.1, key: $0.2).get() }
    var state2 = MartState()
    let t3 = ContinuousClock.now
    for e in decoded { _ = state2.apply(e, valueHash: 1) }
    let s3 = seconds(ContinuousClock.now - t3)
    print(String(format: "marts only (pre-decoded events): %d events in %.2f s = %.0f events/s", decoded.count, s3, Double(decoded.count) / s3))
    let decoder = JSONDecoder()
    let sample = values.prefix(200_000)
    let t1 = ContinuousClock.now
    var ok = 0
    for (v, _, _) in sample { if (try? decoder.decode(FoundationEnvelope.self, from: Data(v))) != nil { ok += 1 } }
    let s1 = seconds(ContinuousClock.now - t1)
    print(String(format: "Foundation JSONDecoder (decode only, %d events): %.2f s = %.0f events/s", sample.count, s1, Double(sample.count) / s1))
    let t2 = ContinuousClock.now
    var decodedOnly = 0
    for (v, t, k) in values { if case .success = EventDecoder.decode(v, topic: t, key: k) { decodedOnly += 1 } }
    let s2 = seconds(ContinuousClock.now - t2)
    print(String(format: "EventDecoder (decode+validate only): %d events in %.2f s = %.0f events/s", decodedOnly, s2, Double(decodedOnly) / s2))
}

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "sim":
    try simBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 20_000)
case "marts":
    try martsBench(customers: args.dropFirst().first.flatMap(Int.init) ?? 10_000)
case "kafka":
    let n = args.dropFirst().first.flatMap(Int.init) ?? 1_000_000
    let p = args.dropFirst(2).first.flatMap(Int.init) ?? 6
    try kafkaBench(messages: n, partitions: p)
default:
    FileHandle.standardError.write(Data("usage: undercurrent-bench kafka [MESSAGES] [PARTITIONS] | sim [CUSTOMERS] | marts [CUSTOMERS]\n".utf8))
    exit(64)
}
