import Foundation
import Kafka
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

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "kafka":
    let n = args.dropFirst().first.flatMap(Int.init) ?? 1_000_000
    let p = args.dropFirst(2).first.flatMap(Int.init) ?? 6
    try kafkaBench(messages: n, partitions: p)
default:
    FileHandle.standardError.write(Data("usage: undercurrent-bench kafka [MESSAGES] [PARTITIONS]\n".utf8))
    exit(64)
}
