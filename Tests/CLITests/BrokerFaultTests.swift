import Events
import Foundation
import Kafka
import Logging
import Marts
import Simulation
import Synchronization
import Testing
import UndercurrentCLI

/// Broker faults while producing and consuming: added latency, request errors (not leader, request timed
/// out) on Produce and Fetch, and the broker down for four seconds. Every event is delivered and counted
/// exactly once, the lag drains, and the faults show in the clients' error counts.
@Suite(.serialized) struct BrokerFaultTests {
    @Test func latencyRequestErrorsAndAnOutageLoseAndDuplicateNothing() throws {
        let p = try smallWorld()
        let events = Array(try World(p))
        let broker = try EmbeddedBrokerRunner(brokers: 1, partitions: 3, addressFile: nil).start(logger: quiet)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers, ["session.timeout.ms": "30000", "heartbeat.interval.ms": "500"])

        // The consumer runs throughout.
        let state = tempDir()
        var options = MartsConsumer.Options(stateDirectory: state)
        options.group = "faults"
        // Longer than the outage and the reconnection after it, also when the whole suite loads both cores
        // (20 s once proved too short there: the consumer left before the last messages came).
        options.exitWhenIdle = .seconds(45)
        options.checkpointEvents = 1000
        options.reportInterval = .milliseconds(300)
        var debugLogger = Logger(label: "faults")
        debugLogger.logLevel = ProcessInfo.processInfo.environment["UC_DEBUG"] == nil ? .critical : .info
        let consumer = MartsConsumer(options: options, logger: debugLogger)
        let consumerError = Mutex<String?>(nil)
        let consumerDone = Atomic<Bool>(false)
        Thread {
            do { try consumer.run(kafka: kafka, stop: StopSignal(handleSignals: false)) } catch { consumerError.withLock { $0 = "\(error)" } }
            consumerDone.store(true, ordering: .releasing)
        }.start()

        // The faults, on their own schedule.
        Thread {
            Thread.sleep(forTimeInterval: 1)
            try? broker.setLatency(broker: 1, milliseconds: 250)
            Thread.sleep(forTimeInterval: 2)
            try? broker.setLatency(broker: 1, milliseconds: 0)
            broker.pushRequestErrors(.produce, [6, 7, 6, 7, 6])   // NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
            broker.pushRequestErrors(.fetch, [6, 7, 6, 7, 6])
            Thread.sleep(forTimeInterval: 1)
            try? broker.setBrokerDown(1)
            Thread.sleep(forTimeInterval: 4)
            try? broker.setBrokerUp(1)
        }.start()

        // Production paced over about ten seconds, so every fault lands in the middle of it.
        let producer = try KafkaProducer(config: kafka, logger: quiet)
        let run = ProducerRun(topics: Set(InputTopic.allCases), pacing: .rate(Double(events.count) / 10), label: "faults")
        let sent = try run.run(world: try World(p), simulationStart: p.start, producer: producer, stop: StopSignal(handleSignals: false)) { _ in }
        #expect(sent.delivered == events.count && sent.failed == 0)
        #expect(producer.statistics.inFlight == 0)

        let deadline = Date().addingTimeInterval(300)
        while !consumerDone.load(ordering: .acquiring) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(consumerError.withLock { $0 } == nil)
        let summary = consumer.summary
        #expect(summary.accepted == events.count, "stalled partitions restarted: \(summary.stalledPartitionRestarts)")
        #expect(summary.duplicates == 0 && summary.rejected == 0)
        let metrics = consumer.metrics
        #expect(metrics.totalLag == 0)
        #expect(metrics.kafkaClientErrors > 0, "the outage shows in the consumer's error count")

        let (got, _) = try StateDirectory(state.path).load()
        var reference = MartState()
        for e in events { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(got.tables() == MartSnapshot([reference]).tables())
    }
}
