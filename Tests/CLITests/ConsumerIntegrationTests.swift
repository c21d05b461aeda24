import Config
import Consumer
import Checkpoints
import Events
import Foundation
import Kafka
import Logging
import Marts
import Simulation
import Streams
import Synchronization
import Testing
import TestSupport
import UndercurrentCLI

func smallWorld() throws -> SimulationParameters {
    let config = try ConfigLoader.load(scenario: "payment-incident", configDir: repoConfig)
    let start = Timestamp(year: 2024, month: 1, day: 1)
    return SimulationParameters(config: config, seed: 3, customers: 120, start: start, end: start.addingMonths(10))
}

/// Produces the simulation to the embedded broker, plus `extra` raw messages.
func produce(_ p: SimulationParameters, to broker: EmbeddedBroker, extra: [ProducerMessage] = [], pacing: Pacing = .backfill) throws -> Int {
    let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
    let run = ProducerRun(topics: Set(InputTopic.allCases), pacing: pacing, label: "test")
    let s = try run.run(world: try World(p), simulationStart: p.start, producer: producer, stop: StopSignal(handleSignals: false), report: { _ in }, notice: { _ in })
    for m in extra { try producer.send(m) }
    try producer.flush()
    return s.delivered
}

func consume(_ broker: EmbeddedBroker, stateDir: URL, group: String, idle: Duration = .seconds(3), stopAfter: Int? = nil,
             configure: (inout MartsConsumer.Options) -> Void = { _ in }) throws -> MartsConsumer.Summary {
    var options = MartsConsumer.Options(stateDirectory: stateDir)
    options.group = group
    options.exitWhenIdle = idle
    options.checkpointEvents = 2000
    configure(&options)
    let consumer = MartsConsumer(options: options, logger: quiet)
    let stop = StopSignal(handleSignals: false)
    if let stopAfter {
        // Stop (like Ctrl-C) once the consumer has taken in about `stopAfter` events.
        Thread {
            while consumer.progress < stopAfter { Thread.sleep(forTimeInterval: 0.01) }
            stop.stop()
        }.start()
    }
    // Short sessions: a member that leaves is noticed within seconds on the embedded broker.
    try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers,
                                        ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]), stop: stop)
    return consumer.summary
}

/// What a run that stopped short checkpointed: a consistent state, whose offsets cover exactly the events it
/// accepted. Returns how many that was.
func checkpointedConsistently(_ dir: URL) throws -> Int {
    let (state, offsets) = try StateDirectory(dir.path).load()
    #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(state.accepted))
    return state.accepted
}

/// The next run (a group of its own) takes in the rest, each event once, and ends with the batch marts of the
/// whole history and offsets covering every event.
@discardableResult
func expectTheRestFollowsOnce(_ broker: EmbeddedBroker, stateDir dir: URL, group: String, world p: SimulationParameters,
                              delivered: Int, before first: Int) throws -> MartsConsumer.Summary {
    let rest = try consume(broker, stateDir: dir, group: group)
    #expect(rest.accepted == delivered - first)
    let (whole, offsets) = try StateDirectory(dir.path).load()
    #expect(whole.tables() == MartSnapshot([martState(Array(try World(p)))]).tables())
    #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(delivered))
    return rest
}

/// The small world produced to a new embedded broker of 4 partitions per topic: the world, the broker, and how
/// many events it holds.
func producedSmallWorld() throws -> (SimulationParameters, EmbeddedBroker, Int) {
    let p = try smallWorld()
    let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
    return (p, broker, try produce(p, to: broker))
}

/// After a run stopped short with outputs it could not send: with the broker up and its request errors gone, the
/// next run takes in the rest, each event once (`expectTheRestFollowsOnce`), and sends risk changes.
func expectTheRestFollowsWithItsOutputs(_ broker: EmbeddedBroker, stateDir dir: URL, group: String, world p: SimulationParameters,
                                        delivered: Int, before first: Int) throws {
    try broker.setBrokerUp(1)
    broker.clearRequestErrors(.produce)
    let rest = try expectTheRestFollowsOnce(broker, stateDir: dir, group: group, world: p, delivered: delivered, before: first)
    #expect(rest.riskChanges > 0)
}

@Suite(.serialized) struct ConsumerIntegrationTests {
    @Test func consumerThroughTheEmbeddedBrokerEqualsTheBatchOfTheSameEvents() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        let bad = ProducerMessage(topic: "payments", key: Array("cus_000001".utf8), value: Array("{\"schema\":1,\"type\":".utf8))
        let delivered = try produce(p, to: broker, extra: [bad])
        let dir = tempDir()
        let metricsFile = dir.appendingPathComponent("metrics.prom")
        let summary = try consume(broker, stateDir: dir, group: "it-1") { $0.metricsFile = metricsFile; $0.reportInterval = .milliseconds(500) }
        #expect(summary.accepted == delivered)
        #expect(summary.rejected == 1)
        // Metrics: the final report counts everything and every assigned partition has caught up.
        let metrics = try String(contentsOf: metricsFile, encoding: .utf8)
        #expect(metrics.contains("undercurrent_input_messages_total{outcome=\"accepted\"} \(delivered)\n"))
        #expect(metrics.contains("undercurrent_dlq_messages_total 1\n"))
        #expect(metrics.contains("undercurrent_kafka_cluster_up 1.0\n") && metrics.contains("undercurrent_outputs_in_flight 0.0\n"))
        let lagLines = metrics.split(separator: "\n").filter { $0.hasPrefix("undercurrent_consumer_lag_messages{") }
        #expect(lagLines.count == 12)  // 3 topics × 4 partitions
        #expect(lagLines.allSatisfy { $0.hasSuffix(" 0.0") })
        let lagSecondsLines = metrics.split(separator: "\n").filter { $0.hasPrefix("undercurrent_consumer_lag_seconds{") }
        #expect(lagSecondsLines.count == 12 && lagSecondsLines.allSatisfy { $0.hasSuffix(" 0.0") })
        #expect(metrics.contains("undercurrent_checkpoint_duration_seconds_count \(summary.checkpoints)\n"))
        try expectPromtoolAccepts(metrics)
        let (snapshot, checkpointed) = try StateDirectory(dir.path).load()

        var reference = MartState()
        for e in try World(p) { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(snapshot.tables() == MartSnapshot([reference]).tables())
        #expect(DataQuality.check(snapshot).isEmpty)

        // The checkpointed offsets are the group's committed offsets, as a second client (a lag tool) reads them.
        var want: [TopicPartition: Int64] = [:]
        for (topic, parts) in checkpointed { for (p, o) in parts { want[TopicPartition(topic, p)] = o } }
        #expect(want.count == 12)
        var readerConfig = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        readerConfig["group.id"] = "it-1"
        let reader = try KafkaConsumer(config: readerConfig, logger: quiet)
        #expect(try reader.committed(Array(want.keys)) == want)

        // The malformed message went to the dead-letter topic with its reason.
        let dlq = try KafkaConsumer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
        try dlq.assign(Dictionary(uniqueKeysWithValues: (0..<4).map { (TopicPartition("events-dlq", Int32($0)), KafkaOffset.beginning) }))
        var got: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(15)
        while got.isEmpty && ContinuousClock.now < deadline { got += try dlq.poll(timeout: .milliseconds(200)) }
        #expect(got.count == 1)
        #expect(got.first.flatMap { $0.header("dlq-reason") }.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("invalid_json") == true)
        #expect(got.first.map { Array($0.value) } == bad.value)
    }

    @Test func batchesAppliedOnSeveralThreadsGiveWhatOneThreadGives() throws {
        let (_, broker, delivered) = try producedSmallWorld()
        var results: [(MartsConsumer.Summary, [MartTable])] = []
        for threads in [1, 4] {
            let dir = tempDir()
            let summary = try consume(broker, stateDir: dir, group: "it-threads-\(threads)") { $0.threads = threads }
            let (snapshot, _) = try StateDirectory(dir.path).load()
            #expect(DataQuality.check(snapshot).isEmpty)
            results.append((summary, snapshot.tables()))
        }
        let (one, four) = (results[0], results[1])
        #expect(one.0.accepted == delivered && four.0.accepted == delivered)
        #expect(one.0.duplicates == 0 && four.0.duplicates == 0)
        #expect(one.0.parallelBatches == 0)
        #expect(four.0.parallelBatches > 0, "some batches were split between threads")
        // How many segment changes get announced depends on how the topics' messages interleave in a
        // partition (each is assessed as of the partition's newest event), which fetch timing decides; the
        // segments finally announced are in customer 360 and must agree.
        #expect(one.0.riskChanges > 0 && four.0.riskChanges > 0)
        #expect(one.0.alertsFiring == four.0.alertsFiring && one.0.alertsResolved == four.0.alertsResolved)
        #expect(one.1 == four.1)
    }

    /// `until` from Kafka: the consumer stops by itself once every partition is past the time (no idle wait:
    /// it is not set), with the marts of the events up to it; its checkpoints (and the offsets it commits to
    /// the group) stay at each partition's first message after the time, so the same consumer without `until`
    /// then applies the rest, each event once. Before, it consumed what came after the time (a later run never
    /// applied it) and a consumer on live topics never stopped.
    @Test func untilStopsByItselfAndTheRestFollowsOnce() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let events = Array(try World(p))
        let until = events[events.count / 2].occurredAt
        let upTo = events.filter { $0.occurredAt <= until }
        let dir = tempDir()
        // A guard against a hang only: a run that is still going after ten minutes is stopped, and fails below.
        let watchdog = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        Thread {
            finished.sleep(.seconds(600))
            if !finished.isStopped { watchdog.stop() }
        }.start()
        var options = MartsConsumer.Options(stateDirectory: dir)
        options.group = "it-until"
        options.until = until
        options.checkpointEvents = 500
        let consumer = MartsConsumer(options: options, logger: quiet)
        try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]),
                         stop: watchdog)
        finished.stop()
        #expect(!watchdog.isStopped, "the run did not stop by itself")
        #expect(consumer.summary.accepted == upTo.count)
        #expect(consumer.summary.skippedAfterUntil > 0)
        let (snapshot, checkpointed) = try StateDirectory(dir.path).load()
        #expect(snapshot.tables() == MartSnapshot([martState(upTo)]).tables())
        // Held: the checkpoints stay before every event after the time, and the group's offsets with them.
        let held = checkpointed.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        #expect(held >= Int64(upTo.count) && held < Int64(delivered))
        var want: [TopicPartition: Int64] = [:]
        for (topic, parts) in checkpointed { for (p, o) in parts { want[TopicPartition(topic, p)] = o } }
        var readerConfig = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        readerConfig["group.id"] = "it-until"
        #expect(try KafkaConsumer(config: readerConfig, logger: quiet).committed(Array(want.keys)) == want)

        let rest = try consume(broker, stateDir: dir, group: "it-until")
        #expect(rest.accepted == delivered - upTo.count)
        let (whole, offsets) = try StateDirectory(dir.path).load()
        #expect(whole.tables() == MartSnapshot([martState(events)]).tables())
        #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(delivered))
    }

    /// A run that exits when idle against an address no broker answers on: it fails with the reason once the grace
    /// has passed, instead of waiting for ever (before, a mistyped address hung a batch run). The command says it in
    /// one line, status 1.
    @Test func aRunThatExitsWhenIdleGivesUpOnAClusterThatNeverAnswers() throws {
        var options = MartsConsumer.Options(stateDirectory: tempDir())
        options.exitWhenIdle = .seconds(1)
        options.unreachableGrace = .seconds(2)
        let consumer = MartsConsumer(options: options, logger: quiet)
        // A guard against a hang only: a run still waiting after ten minutes is stopped, and fails below.
        let stop = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        Thread {
            finished.sleep(.seconds(600))
            if !finished.isStopped { stop.stop() }
        }.start()
        let error = #expect(throws: KafkaError.self) { try consumer.run(kafka: KafkaConfig(bootstrapServers: "127.0.0.1:1"), stop: stop) }
        finished.stop()
        #expect(!stop.isStopped)
        #expect(error?.message.hasPrefix("no broker answered for ") == true, "\(String(describing: error))")

        let (status, stderr) = try BadFlagsTests.run("marts-consumer", ["--state-dir", tempDir().path, "--bootstrap-servers", "127.0.0.1:1",
                                                                        "--exit-when-idle", "1", "--log-level", "error"])
        #expect(status == 1)
        let lines = stderr.split(separator: "\n")
        #expect(lines.last?.hasPrefix("marts-consumer: error: no broker answered for ") == true, "\(stderr)")
        #expect(!stderr.contains("Error: "), "\(stderr)")
    }

    /// A run that exits when idle whose cluster goes away after it started: quiet because no broker answers is
    /// not the end of the input, so it fails once the grace has passed (before, it exited 0 as if done), with its
    /// state checkpointed as far as it got; the same run once the broker is back ends with the marts of all.
    @Test func aRunThatExitsWhenIdleFailsWhenItsClusterGoesAway() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        var options = MartsConsumer.Options(stateDirectory: dir)
        options.group = "it-lost"
        options.exitWhenIdle = .seconds(1)
        options.unreachableGrace = .seconds(2)
        options.checkpointEvents = 2000
        let consumer = MartsConsumer(options: options, logger: quiet)
        let stop = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        let down = Atomic<Bool>(false)
        Thread {
            // The broker goes once the consumer has taken in events; a guard against a hang stops the run after
            // ten minutes (and fails below).
            while consumer.progress == 0 && !finished.isStopped { finished.sleep(.milliseconds(5)) }
            try? broker.setBrokerDown(1)
            down.store(true, ordering: .releasing)
            finished.sleep(.seconds(600))
            if !finished.isStopped { stop.stop() }
        }.start()
        let error = #expect(throws: ClusterLostError.self) {
            try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]),
                             stop: stop)
        }
        finished.stop()
        #expect(!stop.isStopped && down.load(ordering: .acquiring))
        #expect(error?.seconds ?? 0 >= 2)
        #expect(consumer.summary.accepted > 0 && consumer.summary.accepted <= delivered)
        // What the checkpoints hold is a consistent state: its offsets cover exactly the events it accepted.
        let first = try checkpointedConsistently(dir)

        try broker.setBrokerUp(1)
        try expectTheRestFollowsOnce(broker, stateDir: dir, group: "it-lost-2", world: p, delivered: delivered, before: first)
    }

    /// Outputs the cluster refuses for good (here every produce request fails with a permanent error): no
    /// checkpoint may cover them, since they cannot be sent again from the process. The consumer stops with the
    /// reason (before, the checkpoint went ahead and they were lost); the next run sends them and ends whole. The
    /// reason is `OutputsLostError` whichever the consuming thread sees first: the refused delivery's report, or
    /// librdkafka refusing the next message to the topic it marked failed (which escaped as a bare `KafkaError` once
    /// in CI).
    @Test func outputsTheClusterRefusesStopTheConsumerBeforeACheckpointCoversThem() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        broker.pushRequestErrors(.produce, Array(repeating: 29, count: 10_000))  // TOPIC_AUTHORIZATION_FAILED
        let error = #expect(throws: OutputsLostError.self) { try consume(broker, stateDir: dir, group: "it-refused") }
        #expect(error?.failed ?? 0 > 0)
        let first = try checkpointedConsistently(dir)
        #expect(first < delivered, "a checkpoint covered every event although their outputs were refused")

        try expectTheRestFollowsWithItsOutputs(broker, stateDir: dir, group: "it-refused-2", world: p, delivered: delivered, before: first)
    }

    /// A sink that fails to take a batch's outputs (a full output queue, a file it cannot write): those outputs are
    /// gone from the consumer's hands, so no checkpoint may cover their batch. The consumer stops with the error,
    /// its checkpoints short of that batch (before, the close's revoke checkpointed it: its outputs were lost);
    /// the next run applies that batch again and sends its outputs.
    @Test func aSinkThatFailsToTakeOutputsStopsTheConsumerBeforeACheckpointCoversThem() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        let sink = FailingSink(failAtBatch: 3)
        let probe = ProgressProbe()
        let error = #expect(throws: FailingSink.Failure.self) {
            try consume(broker, stateDir: dir, group: "it-sink-fails") {
                $0.sinks = [sink]
                $0.probe = probe
                $0.checkpointEvents = 1
                $0.pollBatch = 200
            }
        }
        #expect(error != nil)
        let applied = probe.applied.load(ordering: .acquiring)
        let first = try checkpointedConsistently(dir)
        #expect(first > 0 && first <= applied,
                "the checkpoints cover \(first) events, the batches whose outputs were taken \(applied)")

        try expectTheRestFollowsWithItsOutputs(broker, stateDir: dir, group: "it-sink-fails-2", world: p, delivered: delivered, before: first)
    }

    /// Stopped (Ctrl-C) while its output queue is full (here it holds 5 messages, and every produce request fails
    /// with a retriable error): the consumer waits for room, says so, keeps its metrics current, and stops waiting
    /// once stopped: at once while no broker answers, within 10 s while brokers answer with errors. (Before, it
    /// waited out the queue's five minutes.) That batch is covered by no checkpoint; the next run sends its outputs.
    @Test(arguments: [true, false])
    func aConsumerStoppedWithItsOutputQueueFullStopsWaitingForRoom(clusterDown: Bool) throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        broker.pushRequestErrors(.produce, Array(repeating: 19, count: 100_000))  // NOT_ENOUGH_REPLICAS, retriable
        let full = StopSignal(handleSignals: false), unreachable = StopSignal(handleSignals: false)
        let logger = Logger(label: "test") { _ in
            CallbackLogHandler(level: .notice) { e in
                let line = e.message.description
                if line.hasPrefix("output queue full") { full.stop() }
                if line.hasPrefix("Kafka cluster unreachable") { unreachable.stop() }
            }
        }
        var options = MartsConsumer.Options(stateDirectory: dir)
        options.group = "it-queue-full-\(clusterDown)"
        options.checkpointEvents = 2000
        let consumer = MartsConsumer(options: options, logger: logger)
        let stop = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        let metricsShowedTheOutage = Atomic<Bool>(false), outputsShown = Atomic<Int>(0)
        stopDuringOutage(broker, stop: stop, finished: finished) { waitFor in
            waitFor { full.isStopped }
            // The metrics are refreshed while the consumer waits for room (it is not polling meanwhile).
            waitFor { consumer.metrics.outputsInFlight >= 5 }
            outputsShown.store(consumer.metrics.outputsInFlight, ordering: .releasing)
            if clusterDown {
                try? broker.setBrokerDown(1)
                waitFor { unreachable.isStopped }
                waitFor { consumer.metrics.clusterWaitingSeconds != nil }
                metricsShowedTheOutage.store(consumer.metrics.clusterWaitingSeconds != nil, ordering: .releasing)
            }
        }
        defer { finished.stop() }
        let error = #expect(throws: KafkaError.self) {
            try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers, [
                "session.timeout.ms": "6000", "heartbeat.interval.ms": "500", "queue.buffering.max.messages": "5",
            ]), stop: stop)
        }
        finished.stop()
        // Which rule ended the wait: the cluster's absence (at once), or the stop while brokers answer with errors
        // (after 10 s). Before, it was the queue's own limit of five minutes ("in-flight queue still full").
        let because = clusterDown ? "and no broker answers: stopped" : "and the cluster took none of them for 10 s after the stop"
        #expect(error?.description.contains("the output queue is full") == true && error?.description.contains(because) == true,
                "\(String(describing: error))")
        let shown = outputsShown.load(ordering: .acquiring)
        #expect(shown >= 5, "the metrics showed \(shown) outputs in flight while the queue of 5 was full")
        let metricsShowed = metricsShowedTheOutage.load(ordering: .acquiring)
        #expect(metricsShowed || !clusterDown, "the metrics did not show the absent cluster while the consumer waited for room")
        let first = try checkpointedConsistently(dir)
        #expect(first < consumer.summary.accepted, "the checkpoints cover events whose outputs were never sent")

        try expectTheRestFollowsWithItsOutputs(broker, stateDir: dir, group: "it-queue-full-\(clusterDown)-2", world: p,
                                               delivered: delivered, before: first)
    }

    /// Stopped (Ctrl-C) while no broker answers and its outputs are still in flight: the consumer cannot take its
    /// last checkpoint, and gives it up at its first failed try instead of making the user wait. (Before, it hung:
    /// after four tries of the last checkpoint and a failed final flush, the close's revoke retried for ever.)
    /// Nothing is lost: the next run applies those events again and sends their outputs.
    @Test func aConsumerStoppedDuringAnOutageGivesUpItsLastCheckpointAtOnce() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        // Outputs stay in flight: every produce request fails with a retriable error (NOT_ENOUGH_REPLICAS).
        broker.pushRequestErrors(.produce, Array(repeating: 19, count: 100_000))
        let probe = FailureProbe()
        let unreachable = StopSignal(handleSignals: false)
        let lines = Mutex<[String]>([])
        let logger = Logger(label: "test") { _ in
            CallbackLogHandler(level: .notice) { e in
                lines.withLock { $0.append(e.message.description) }
                if e.message.description.hasPrefix("Kafka cluster unreachable") { unreachable.stop() }
            }
        }
        var options = MartsConsumer.Options(stateDirectory: dir)
        options.group = "it-outage-stop"
        options.checkpointEvents = 2000
        options.probe = probe
        let consumer = MartsConsumer(options: options, logger: logger)
        let stop = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        let failuresAtStop = Atomic<Int>(-1)
        let metricsShowedTheOutage = Atomic<Bool>(false)
        // Once a checkpoint has failed (its outputs cannot be delivered), the broker goes; once the consumer says no
        // broker answers, and its metrics show it, it is stopped.
        stopDuringOutage(broker, stop: stop, finished: finished) { waitFor in
            waitFor { probe.failures.load(ordering: .acquiring) > 0 }
            try? broker.setBrokerDown(1)
            waitFor { unreachable.isStopped }
            // The metrics show both while the checkpoint is retried (before, they froze at its first try).
            func shown() -> Bool { consumer.metrics.clusterWaitingSeconds != nil && consumer.metrics.checkpointFailures > 0 }
            waitFor(shown)
            metricsShowedTheOutage.store(shown(), ordering: .releasing)
            failuresAtStop.store(probe.failures.load(ordering: .acquiring), ordering: .releasing)
        }
        defer { finished.stop() }
        try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]),
                         stop: stop)
        finished.stop()
        let atStop = failuresAtStop.load(ordering: .acquiring)
        #expect(atStop >= 1)
        let metricsShowed = metricsShowedTheOutage.load(ordering: .acquiring)
        #expect(metricsShowed, "the metrics did not show the failing checkpoint and the absent cluster")
        // After the stop: the try under way, the last checkpoint's and the close's, each given up at its first failure.
        let after = probe.failures.load(ordering: .acquiring) - atStop
        #expect(after <= 3, "\(after) failed tries after the stop")
        #expect(consumer.checkpointGaveUp != nil)
        // The undelivered outputs are dropped knowingly, said in a line of its own (not librdkafka's warning of a
        // producer closing with messages in its queue).
        let said = lines.withLock { $0 }
        #expect(said.contains { $0.hasSuffix("outputs not delivered are dropped: no checkpoint covers them, and the next start sends them again") })
        #expect(!said.contains { $0.contains("Producer terminating") }, "\(said)")
        let first = try checkpointedConsistently(dir)
        #expect(first < consumer.summary.accepted, "the checkpoints cover events whose outputs were never delivered")

        try expectTheRestFollowsWithItsOutputs(broker, stateDir: dir, group: "it-outage-stop-2", world: p, delivered: delivered, before: first)
    }

    @Test func stoppedAndRestartedConsumerEndsWithTheSameMarts() throws {
        let (p, broker, delivered) = try producedSmallWorld()
        let dir = tempDir()
        var total = 0
        for round in 0..<3 {
            let s = try consume(broker, stateDir: dir, group: "it-2-\(round)", stopAfter: round < 2 ? delivered / 4 : nil)
            total += s.accepted
        }
        let (snapshot, offsets) = try StateDirectory(dir.path).load()
        #expect(snapshot.accepted == delivered)
        #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(delivered))
        var reference = MartState()
        for e in try World(p) { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(snapshot.tables() == MartSnapshot([reference]).tables())
        // Events taken in after the last checkpoint of a stopped run are taken in again, never twice in the state.
        #expect(total >= delivered)
    }
}

/// Counts the consumer's assignments and applied messages.
final class ProgressProbe: ConsumerProbe {
    let assignments = Atomic<Int>(0), applied = Atomic<Int>(0)
    func applied(_ message: KafkaMessage) { applied.add(1, ordering: .releasing) }
    func checkpointed(seconds: Double) {}
    func assigned() { assignments.add(1, ordering: .releasing) }
}

/// Runs `script` on a thread of its own, then stops the consumer (`stop`). The script's waits (`waitFor`) each end
/// after ten minutes at most, a guard against a hang (the test's expectations then fail); so does the wait for the
/// run to finish (`finished`), after which the broker comes back and its request errors go, so that it can.
func stopDuringOutage(_ broker: EmbeddedBroker, stop: StopSignal, finished: StopSignal,
                      _ script: @escaping @Sendable (_ waitFor: (() -> Bool) -> Void) -> Void) {
    Thread {
        let guardTime = ContinuousClock.now + .seconds(600)
        func waitFor(_ condition: () -> Bool) {
            while !condition() && !finished.isStopped && ContinuousClock.now < guardTime { finished.sleep(.milliseconds(5)) }
        }
        script(waitFor)
        stop.stop()
        finished.sleep(.seconds(600))
        if !finished.isStopped {
            try? broker.setBrokerUp(1)
            broker.clearRequestErrors(.produce)
        }
    }.start()
}

/// A sink that takes the outputs of a run's first batches with outputs and throws at the `failAtBatch`th.
final class FailingSink: ConsumerSink, @unchecked Sendable {
    struct Failure: Error {}
    let failAtBatch: Int
    private let batches = Atomic<Int>(0)
    init(failAtBatch: Int) { self.failAtBatch = failAtBatch }
    func send(_ outputs: [ConsumerOutput]) throws {
        guard !outputs.isEmpty else { return }
        if batches.add(1, ordering: .relaxed).newValue >= failAtBatch { throw Failure() }
    }
}

/// Counts the consumer's failed checkpoint writes.
final class FailureProbe: ConsumerProbe {
    let failures = Atomic<Int>(0)
    func applied(_ message: KafkaMessage) {}
    func checkpointed(seconds: Double) {}
    func checkpointFailed() { failures.add(1, ordering: .releasing) }
}

@Suite(.serialized) struct ConsumerGroupTests {
    @Test func twoConsumersInOneGroupWithASharedStateDirectoryGiveTheMartsOfOne() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        let dir = tempDir()
        // The first consumer starts alone and takes every partition; the second joins while events still
        // arrive, so partitions (and their checkpoints) are handed over in a rebalance.
        let results = Mutex<[MartsConsumer.Summary]>([])
        let firstProbe = ProgressProbe()
        let first = Thread {
            let s = try! consume(broker, stateDir: dir, group: "shared", idle: .seconds(6)) { $0.probe = firstProbe }
            results.withLock { $0.append(s) }
        }
        first.start()
        // Observed, not guessed: the first has its partitions before events come, and has applied some before the
        // second joins (a ten-minute guard against a hang; the expectations below then fail).
        let guardTime = ContinuousClock.now + .seconds(600)
        while firstProbe.assignments.load(ordering: .acquiring) == 0 && ContinuousClock.now < guardTime { Thread.sleep(forTimeInterval: 0.01) }
        let producerDone = DispatchSemaphore(value: 0)
        let deliveredBox = Mutex(0)
        Thread {
            let n = try! produce(p, to: broker, pacing: .rate(800))  // about 10 s of events
            deliveredBox.withLock { $0 = n }
            producerDone.signal()
        }.start()
        while firstProbe.applied.load(ordering: .acquiring) < 500 && ContinuousClock.now < guardTime { Thread.sleep(forTimeInterval: 0.01) }
        let started = ContinuousClock.now
        let second = try consume(broker, stateDir: dir, group: "shared", idle: .seconds(6))
        producerDone.wait()
        let delivered = deliveredBox.withLock { $0 }
        while results.withLock({ $0.count }) < 1 { Thread.sleep(forTimeInterval: 0.1) }
        let firstSummary = results.withLock { $0[0] }
        #expect(firstSummary.accepted > 0 && second.accepted > 0,
                "both consumers should have taken part (first \(firstSummary.accepted), second \(second.accepted), second ran \(ContinuousClock.now - started))")

        let (snapshot, offsets) = try StateDirectory(dir.path).load()
        #expect(snapshot.accepted == delivered)
        #expect(snapshot.duplicates == 0)
        #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(delivered))
        var reference = MartState()
        for e in try World(p) { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(snapshot.tables() == MartSnapshot([reference]).tables())
    }
}
