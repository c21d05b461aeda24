import Events
import ArgumentParser
import Foundation
import Kafka
import Logging

/// A produce/consume round trip: proves a cluster (embedded or real) carries keyed messages with headers.
public struct SmokeCheck {
    public var messages = 10_000
    public var topic = Topics.billing

    public init(messages: Int = 10_000, topic: String = Topics.billing) {
        self.messages = messages
        self.topic = topic
    }

    public struct Result: Sendable {
        public var produced: Int
        public var consumed: Int
        public var seconds: Double
    }

    public func run(config: KafkaConfig, logger: Logger) throws -> Result {
        let start = ContinuousClock.now
        let admin = try KafkaAdmin(config: config, logger: logger)
        // From the cluster's list of topics: asking for the topic by name may create it.
        let found: [String: [Int32]]
        do { found = try admin.partitions(of: [topic]) } catch { throw StartError("cannot reach the cluster: \(error)") }
        guard let partitions = found[topic], !partitions.isEmpty else {
            throw StartError("the cluster has no topic '\(topic)': create it first (the check writes \(messages) messages to it and reads them back)")
        }
        var before: [Int32: Int64] = [:]
        for p in partitions { before[p] = try admin.watermarks(TopicPartition(topic, p)).high }
        let runID = UUID().uuidString.prefix(8)
        let producer = try KafkaProducer(config: config, logger: logger)
        for i in 0..<messages {
            let key = "smoke_\(i % 97)"
            try producer.send(ProducerMessage(topic: topic, key: Array(key.utf8), value: Array("{\"smoke\":\"\(runID)\",\"i\":\(i)}".utf8),
                                              headers: [KafkaHeader("event-type", "smoke")]))
        }
        try producer.flush()
        let consumer = try KafkaConsumer(config: config, logger: logger)
        try consumer.assign(Dictionary(uniqueKeysWithValues: partitions.map { (TopicPartition(topic, $0), KafkaOffset(before[$0] ?? 0)) }))
        var seen = Set<Int>()
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.count < messages && ContinuousClock.now < deadline {
            for m in try consumer.poll(maxMessages: 1000, timeout: .milliseconds(200)) {
                let text = String(decoding: m.value, as: UTF8.self)
                guard text.contains(String(runID)), let i = Int(text.split(separator: ":").last!.dropLast()) else { continue }
                seen.insert(i)
            }
        }
        consumer.close()
        let elapsed = ContinuousClock.now - start
        return Result(produced: producer.statistics.delivered, consumed: seen.count,
                      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

struct SmokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smoke",
        abstract: "Produce and consume a batch of messages to check a cluster works (starts an embedded broker with --embedded)."
    )

    @Flag(help: "Start an embedded broker for the check instead of using --bootstrap-servers.") var embedded = false
    @Option(help: "How many messages.") var messages = 10_000
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard messages > 0 else { throw ValidationError("--messages: expected a positive number, got \(messages)") }
    }

    func run() throws {
        let logger = common.makeLogger("smoke")
        var broker: EmbeddedBroker? = nil
        let config: KafkaConfig
        if embedded {
            let b = try EmbeddedBrokerRunner(addressFile: nil).start(logger: logger)
            broker = b
            config = KafkaConfig(bootstrapServers: b.bootstrapServers)
        } else {
            config = try kafka.kafkaConfig()
        }
        let result = try SmokeCheck(messages: messages).run(config: config, logger: logger)
        Console.out("smoke check: produced \(result.produced), consumed \(result.consumed) of \(messages) in \(String(format: "%.2f", result.seconds)) s")
        withExtendedLifetime(broker) {}
        if result.consumed != messages || result.produced != messages { throw ExitCode(1) }
    }
}
