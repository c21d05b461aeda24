import Checkpoints
import Archives
import Config
import Consumer
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
@testable import UndercurrentCLI

/// An archive as `record` writes one, of records of these topics and partitions in this order (record i at offset i),
/// whose values are not events: for replay tests about where records go, not what they say.
func recordedArchive(_ records: [(topic: String, partition: Int32)]) throws -> String {
    let archive = tempDir().appendingPathComponent("recorded.ndjson").path
    let writer = try ArchiveWriter(path: archive)
    for (offset, r) in records.enumerated() {
        try writer.write(ArchiveRecord(topic: r.topic, partition: r.partition, offset: Int64(offset), key: Array("cus_\(offset)".utf8),
                                       timestamp: Timestamp(ms: 1_704_067_200_000 + Int64(offset)), headers: [], value: Array("{}".utf8)))
    }
    try writer.close()
    return archive
}

func createTopics(_ broker: EmbeddedBroker, prefix: String, partitions: Int) throws {
    for t in Topics.inputs + Topics.outputs { try broker.createTopic(prefix + t, partitions: partitions) }
}

/// Consumes `prefix`-ed input topics into a fresh state directory; returns the consumer.
func consumeTopics(_ broker: EmbeddedBroker, prefix: String, rules: AlertRules? = nil,
                   configure: (inout MartsConsumer.Options) -> Void = { _ in }) throws -> (MartsConsumer, URL) {
    let dir = tempDir()
    var options = MartsConsumer.Options(stateDirectory: dir)
    // The topics as `marts-consumer --topic-prefix` names them.
    let command = try MartsConsumerCommand.parse(["--state-dir", dir.path, "--topic-prefix", prefix])
    command.applyTopics(to: &options)
    #expect(options.topics.count == 3 && InputTopic.allCases.allSatisfy { options.topics[$0] == prefix + $0.rawValue })
    #expect(options.group == prefix + ConsumerOptions.defaultGroup)
    #expect([options.deadLetterTopic, options.alertsTopic, options.riskTopic] == [prefix + Topics.deadLetter, prefix + Topics.alerts, prefix + Topics.customerRisk])
    options.group = "replay-\(UUID().uuidString)"
    options.alertRules = rules
    options.exitWhenIdle = .seconds(3)
    configure(&options)
    let consumer = MartsConsumer(options: options, logger: quiet)
    try consumer.run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers,
                                        ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]),
                     stop: StopSignal(handleSignals: false))
    return (consumer, dir)
}

@Suite(.serialized) struct ReplayTests {
    @Test func gzipArchivesRoundTripAndAreReallyCompressed() throws {
        let p = try smallWorld()
        let dir = tempDir()
        let plain = dir.appendingPathComponent("a.ndjson").path, packed = dir.appendingPathComponent("a.ndjson.gz").path
        let n = try writeArchive(p, to: plain)
        _ = try writeArchive(p, to: packed)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: packed))
        #expect(bytes.prefix(2) == Data([0x1f, 0x8b]))
        let plainSize = try FileManager.default.attributesOfItem(atPath: plain)[.size] as! Int
        #expect(bytes.count * 4 < plainSize)
        let a = try ArchiveReader(path: plain).map { try $0.get() }
        let b = try ArchiveReader(path: packed).map { try $0.get() }
        #expect(a.count == n)
        #expect(a == b)
        // A truncated compressed archive is reported, not silently cut short.
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: packed))
        let items = Array(try ArchiveReader(path: packed))
        #expect(items.contains { if case .failure = $0 { return true } else { return false } })
    }

    /// A record that stands still because no broker answers says so in its progress line, and stops saying so
    /// once the broker is back; nothing is lost or recorded twice.
    @Test func aRecordWaitingForTheClusterSaysSo() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        let delivered = try produce(p, to: broker)
        let writer = try ArchiveWriter(path: tempDir().appendingPathComponent("follow.ndjson").path)
        let stop = StopSignal(handleSignals: false)
        var phase = 0, lines: [String] = []  // 0: up, 1: down, 2: back up
        // Following: the run lasts until stopped. Each step waits on what the progress lines say, and a line that
        // never comes is caught by the ten-minute guard.
        let started = ContinuousClock.now
        let recorded = try Recorder(topics: Topics.inputs, follow: true).run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers),
                                                                             to: writer, stop: stop, logger: quiet) { line in
            lines.append(line)
            if ContinuousClock.now - started > .seconds(600) { stop.stop() }
            switch phase {
            case 0 where line.hasPrefix("record: \(delivered) recorded"):
                try? broker.setBrokerDown(1)
                phase = 1
            case 1 where line.contains("waiting for the cluster: no broker has answered for "):
                try? broker.setBrokerUp(1)
                phase = 2
            case 2 where !line.contains("waiting for the cluster"):
                stop.stop()
            default: break
            }
        }
        try writer.close()
        #expect(phase == 2 && ContinuousClock.now - started < .seconds(600), "\(lines)")
        #expect(recorded.recorded == delivered)
    }

    /// Produce → record (.gz) → replay into fresh topics → a fresh consumer: the marts equal the original's.
    @Test func recordedAndReplayedHistoryGivesTheOriginalMarts() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        try createTopics(broker, prefix: "r.", partitions: 3)
        let delivered = try produce(p, to: broker)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        let (original, originalDir) = try consumeTopics(broker, prefix: "")
        #expect(original.summary.accepted == delivered)

        let archive = tempDir().appendingPathComponent("history.ndjson.gz").path
        let writer = try ArchiveWriter(path: archive)
        let recorded = try Recorder(topics: Topics.inputs).run(kafka: kafka, to: writer, stop: StopSignal(handleSignals: false), logger: quiet) { _ in }
        try writer.close()
        #expect(recorded.recorded == delivered)
        let records = try ArchiveReader(path: archive).map { try $0.get() }
        #expect(records.allSatisfy { $0.partition != nil && $0.offset != nil })
        // The producers' headers (events.md): the value's own type, and the schema.
        for r in records {
            let type = try EventDecoder.decode(r.value, topic: nil).get().type
            #expect(r.headers.map(\.0) == ["event-type", "schema"] && r.headers.map(\.1) == [type.rawValue, "1"], "\(r.headers)")
        }

        // The map as a user gives it: pairs separated by commas, and the option repeated.
        let replayer = try ReplayCommand.parse(["--from", archive, "--topic-map", "billing=r.billing,payments=r.payments",
                                                "--topic-map", "engagement=r.engagement"]).replayer()
        #expect(replayer.topicMap == ["billing": "r.billing", "payments": "r.payments", "engagement": "r.engagement"])
        let producer = try KafkaProducer(config: kafka, logger: quiet)
        let replayed = try replayer.run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(replayed.sent == delivered && replayed.delivered == delivered)

        let (copy, copyDir) = try consumeTopics(broker, prefix: "r.")
        #expect(copy.summary.accepted == delivered)
        let (a, _) = try StateDirectory(originalDir.path).load()
        let (b, _) = try StateDirectory(copyDir.path).load()
        #expect(a.tables() == b.tables())

        // The replayed messages kept keys, headers and timestamps.
        let again = tempDir().appendingPathComponent("copy.ndjson").path
        let w2 = try ArchiveWriter(path: again)
        _ = try Recorder(topics: ["r.billing", "r.payments", "r.engagement"]).run(kafka: kafka, to: w2, stop: StopSignal(handleSignals: false), logger: quiet) { _ in }
        try w2.close()
        func content(_ r: ArchiveRecord) -> String {
            "\(r.topic.replacingOccurrences(of: "r.", with: ""))|\(r.partition!)|\(r.offset!)|\(String(decoding: r.key ?? [], as: UTF8.self))|\(r.timestamp!.ms)|\(r.headers.map { "\($0.0)=\($0.1)" })|\(String(decoding: r.value, as: UTF8.self))"
        }
        let copied = try ArchiveReader(path: again).map { content(try $0.get()) }
        #expect(Set(copied) == Set(records.map(content)))
    }

    /// A producer whose cluster never answers: its final flush gives up after its timeout, and the summary counts
    /// what was left in flight as not delivered, with the reason (the flush's error escaped the summary, and the
    /// producer ended with a bare `Error: flush: …`).
    @Test func aFinalFlushThatGivesUpIsInTheSummary() throws {
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: "127.0.0.1:1"), logger: quiet)
        var run = ProducerRun(topics: [.billing], pacing: .backfill, label: "test")
        run.finalFlush = .seconds(2)
        let config = try ConfigLoader.load(scenario: "baseline", configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let p = SimulationParameters(config: config, seed: 1, customers: 5, start: start, end: start.addingMonths(1))
        let s = try run.run(world: try World(p), simulationStart: start, producer: producer, stop: StopSignal(handleSignals: false), report: { _ in }, notice: { _ in })
        #expect(s.sent > 0 && s.delivered == 0 && s.failed == 0)
        #expect(s.gaveUp?.hasPrefix("\(s.sent) still in flight when the final flush gave up after 2 s") == true, "\(String(describing: s.gaveUp))")
        #expect(s.undelivered == s.gaveUp)
    }

    /// `--keep-partitions` into a topic with fewer partitions than recorded: the replay stops at the first record
    /// whose partition the destination lacks, says which and what to do, and still flushes and counts what it sent
    /// before. (It threw a bare "Unknown partition", and the producer was destroyed with the messages before it still
    /// in its queue.) Here the destination's partition count is the one listed at start; a destination created during
    /// the replay is left to librdkafka, which refuses such a message once it has the topic's metadata.
    @Test func aRecordedPartitionTheDestinationLacksStopsTheReplayWithWhatWasSentDelivered() throws {
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        try broker.createTopic("narrow.billing", partitions: 1)
        let archive = try recordedArchive([("billing", 0), ("billing", 0), ("billing", 0), ("billing", 2), ("billing", 0)])
        var replayer = try ReplayCommand.parse(["--from", archive, "--topic-map", "billing=narrow.billing", "--keep-partitions"]).replayer()
        try replayer.checkTargets(admin: KafkaAdmin(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet), logger: quiet)
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
        let s = try replayer.run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(s.sent == 3 && s.delivered == 3 && s.failed == 0)
        #expect(s.refused?.hasPrefix("the record of billing[2] at offset 3: narrow.billing has no partition 2; create narrow.billing") == true,
                "\(s.refused ?? "nil")")
        withExtendedLifetime(broker) {}
    }

    /// A topic map that leaves out a topic of the archive (here `billing`, misspelt): the replay stops at its first
    /// record, before sending it into the live topic of that name, and says what to do; `--keep-unmapped-topics`
    /// sends such records under their own topics. (Before, they went to the live topic without a word.)
    @Test func aTopicTheMapLeavesOutStopsTheReplayBeforeItReachesTheLiveTopic() throws {
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        try createTopics(broker, prefix: "r.", partitions: 2)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        let archive = try recordedArchive([("payments", 0), ("billing", 0), ("payments", 0)])
        let admin = try KafkaAdmin(config: kafka, logger: quiet)
        func inLiveBilling() throws -> Int64 { try (0..<2).reduce(0) { $0 + (try admin.watermarks(TopicPartition("billing", Int32($1))).high) } }
        let producer = try KafkaProducer(config: kafka, logger: quiet)
        let map = ["--from", archive, "--topic-map", "biling=r.billing,payments=r.payments"]
        let stopped = try ReplayCommand.parse(map).replayer().run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(stopped.sent == 1 && stopped.delivered == 1)
        #expect(stopped.refused == "the record of billing[0] at offset 1: --topic-map does not map billing (it maps biling, payments), so it would go to "
                + "the topic billing itself; map it too, or pass --keep-unmapped-topics to send such records under their own topics")
        #expect(try inLiveBilling() == 0)
        let kept = try ReplayCommand.parse(map + ["--keep-unmapped-topics"]).replayer()
            .run(archive: archive, producer: try KafkaProducer(config: kafka, logger: quiet), stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(kept.refused == nil && kept.sent == 3 && kept.delivered == 3)
        #expect(try inLiveBilling() == 1)
        withExtendedLifetime(broker) {}
    }

    /// A consumer whose input topics are not on the cluster at start (a misspelt `--topic-prefix`, a replay not
    /// started yet) says so, naming them and the topics there are; one whose topics are there says nothing of it.
    /// (A batch run ended with "accepted 0" and nothing said.)
    @Test func inputTopicsMissingAtStartAreNamed() throws {
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        let warnings = Mutex<[String]>([])
        let logger = Logger(label: "test") { _ in
            CallbackLogHandler(level: .warning) { e in warnings.withLock { $0.append(e.message.description) } }
        }
        for prefix in ["replya.", ""] {
            var options = MartsConsumer.Options(stateDirectory: tempDir())
            try MartsConsumerCommand.parse(["--state-dir", "x", "--topic-prefix", prefix]).applyTopics(to: &options)
            options.exitWhenIdle = .seconds(1)
            try MartsConsumer(options: options, logger: logger).run(kafka: KafkaConfig(bootstrapServers: broker.bootstrapServers),
                                                                      stop: StopSignal(handleSignals: false))
        }
        let said = warnings.withLock { $0 }.filter { $0.hasPrefix("input topic") }
        #expect(said.count == 1, "\(said)")
        #expect(said.first?.hasPrefix("input topics replya.billing, replya.engagement, replya.payments not on the cluster at start (its topics: alerts, billing, ") == true
                && said.first?.hasSuffix("): consuming what there is and waiting for them") == true, "\(said)")
        withExtendedLifetime(broker) {}
    }

    /// The smoke check's round trip through the embedded broker: every message produced comes back, twice in a row
    /// (the second run reads only its own). A topic the cluster lacks is refused, and not created by asking.
    @Test func theSmokeCheckCarriesEveryMessageAndRefusesAMissingTopic() throws {
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        for _ in 0..<2 {
            let r = try SmokeCheck(messages: 700).run(config: kafka, logger: quiet)
            #expect(r.produced == 700 && r.consumed == 700)
        }
        #expect(throws: StartError.self) { _ = try SmokeCheck(messages: 10, topic: "smoke.nope").run(config: kafka, logger: quiet) }
        #expect(!(try KafkaAdmin(config: kafka, logger: quiet).metadata()).contains { $0.name == "smoke.nope" })
        withExtendedLifetime(broker) {}
    }

    /// A topic the cluster does not have (a typo): named with the topics there are, exit 2, no archive, and the
    /// topic not created. `record --topics billing,biling` recorded billing alone and exited 0.
    @Test func recordingATopicTheClusterLacksIsRefusedBeforeTheArchiveExists() throws {
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        let admin = try KafkaAdmin(config: kafka, logger: quiet)
        #expect(throws: StreamSetupError.self) { try Recorder.partitions(of: ["billing", "biling"], admin: admin) }
        #expect(try Recorder.partitions(of: ["billing"], admin: admin).count == 2)
        let out = tempDir().appendingPathComponent("history.ndjson")
        let (status, stderr) = try BadFlagsTests.run("undercurrent", ["record", "--topics", "billing,biling", "--out", out.path,
                                                                      "--bootstrap-servers", broker.bootstrapServers])
        #expect(status == 2, "\(stderr)")
        #expect(stderr.contains("error: the cluster has no topic 'biling' (its topics: ") && stderr.contains("billing"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path) && !FileManager.default.fileExists(atPath: out.path + ".partial"))
        #expect(!(try admin.metadata()).contains { $0.name == "biling" }, "asking about it created it")
        // Replaying into a topic the cluster lacks is warned about (it may be created with another partition count,
        // or every message may fail after a five-minute timeout), and not created by asking.
        var replayer = Replayer()
        replayer.topicMap = ["billing": "billing", "payments": "replay.payments"]
        let warned = try replayer.checkTargets(admin: admin, logger: quiet)
        #expect(warned == ["replay.payments"])
        #expect(replayer.partitionCounts["billing"] == 2 && replayer.partitionCounts["replay.payments"] == nil)
        #expect(!(try admin.metadata()).contains { $0.name == "replay.payments" })
        withExtendedLifetime(broker) {}
    }

    /// A replayed spike re-fires the alerts of the original run; time filters and pacing hold.
    @Test func replayReFiresTheSameAlertsAndHonoursTimeRangeAndSpeed() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let events = spikeEvents()
        let archive = try writeArchive(events, named: "spike.ndjson.gz")
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        let kafka = KafkaConfig(bootstrapServers: broker.bootstrapServers)
        let producer = try KafkaProducer(config: kafka, logger: quiet)
        let sent = try Replayer().run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(sent.delivered == events.count)
        let (live, _) = try consumeTopics(broker, prefix: "", rules: rules)
        var engine = AlertEngine(rules: rules)
        // As the consumer does: event time waits for every assigned payments partition from the start.
        for source in 0..<4 { engine.hold(source: source) }
        var expected: [Alert] = []
        for e in events { expected += engine.observe(e, source: Int(Murmur2.partition(for: Array(e.customerID.utf8), partitionCount: 4))) }
        #expect(live.lateAlertAttempts == 0)
        #expect(live.alerts == expected)
        #expect(live.alerts.contains { $0.state == .firing && $0.scope == "reason:gateway_timeout" })

        // Replaying the same archive into fresh topics fires the same alerts again.
        try createTopics(broker, prefix: "again.", partitions: 4)
        var r = Replayer()
        r.topicMap = ["payments": "again.payments"]
        _ = try r.run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        let (second, _) = try consumeTopics(broker, prefix: "again.", rules: rules)
        #expect(second.lateAlertAttempts == 0)
        #expect(second.alerts == live.alerts)

        // --from-time / --until-time select exactly the records in range.
        let from = events[1000].occurredAt, until = events[1999].occurredAt
        try createTopics(broker, prefix: "range.", partitions: 4)
        var ranged = Replayer()
        ranged.fromTime = from
        ranged.untilTime = until
        ranged.topicMap = ["payments": "range.payments"]
        let rs = try ranged.run(archive: archive, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        let inRange = events.filter { $0.occurredAt >= from && $0.occurredAt <= until }.count
        #expect(rs.sent == inRange && rs.skipped == events.count - inRange)

        // --speed 7200: two hours of history take at least a second.
        let paced = try writeArchive(Array(events.prefix(6 * 120 + 1)), named: "paced.ndjson")
        var fast = Replayer()
        fast.speed = .times(7200)
        fast.topicMap = ["payments": "range.payments"]
        let started = ContinuousClock.now
        _ = try fast.run(archive: paced, producer: producer, stop: StopSignal(handleSignals: false), logger: quiet, report: { _ in }, notice: { _ in })
        #expect(ContinuousClock.now - started >= .milliseconds(950))
    }

    /// Stopped while the cluster is away and the producer's queue is full: the replay stops waiting at once and
    /// reports what was left in flight (before, it waited out the queue's five minutes, then failed with the
    /// queue-full error). The same holds for the producers, which send the same way.
    @Test func aReplayStoppedWhileTheClusterIsAwayStopsAtOnce() throws {
        let events = spikeEvents()
        let archive = try writeArchive(events, named: "outage.ndjson")
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        try broker.setBrokerDown(1)
        // A small queue, so that it is full long before the archive's end.
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["queue.buffering.max.messages": "500"]),
                                         logger: quiet)
        let stop = StopSignal(handleSignals: false), finished = StopSignal(handleSignals: false)
        Thread {
            while producer.statistics.backpressureWaits == 0 && !finished.isStopped { finished.sleep(.milliseconds(5)) }
            stop.stop()
        }.start()
        defer { finished.stop() }
        var replayer = Replayer()
        replayer.finalFlush = .zero
        let s = try replayer.run(archive: archive, producer: producer, stop: stop, logger: quiet, report: { _ in }, notice: { _ in })
        #expect(s.interrupted)
        #expect(s.sent == 500 && s.sent < events.count)
        #expect(s.delivered == 0 && s.gaveUp?.hasPrefix("500 still in flight") == true, "\(s.gaveUp ?? "-")")
    }

    /// Starting at a point in time on the embedded broker (no ListOffsets by time): earlier messages are
    /// scanned and skipped, later ones counted.
    @Test func consumerStartingAtATimeSkipsEarlierMessages() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        let delivered = try produce(p, to: broker)
        let cut = p.start.addingMonths(5)
        let later = try World(p).filter { $0.occurredAt >= cut }.count
        let (c, dir) = try consumeTopics(broker, prefix: "") { $0.startTime = cut }
        #expect(c.summary.accepted == later)
        #expect(c.summary.skippedBeforeStart == delivered - later)
        // The skipped messages' offsets are checkpointed too: a restart does not scan them again.
        let (snapshot, offsets) = try StateDirectory(dir.path).load()
        #expect(snapshot.accepted == later)
        #expect(offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) } == Int64(delivered))
    }
}

@Suite(.serialized) struct LoadTestTests {
    @Test func sloAndRampArgumentsParseOrFailWithTheExpectedForm() throws {
        let p99 = try SLO.parse("p99<50ms")
        #expect(p99.metric == .p99 && p99.lessThan && abs(p99.threshold - 0.05) < 1e-12)
        let rate = try SLO.parse("rate>90k")
        #expect(rate.metric == .rate && !rate.lessThan && rate.threshold == 90_000)
        #expect(throws: (any Error).self) { try SLO.parse("p98<5ms") }
        #expect(throws: (any Error).self) { try SLO.parse("p99<fast") }
        let ramp = try RateProfile.parseRamp("5000:200000:60s")
        #expect(ramp.rate(at: 30) == 102_500 && ramp.rate(at: 90) == 200_000)
        #expect(abs(ramp.total(until: 60) - (5000 + 200_000) / 2 * 60) < 1e-6)
        #expect(abs(ramp.total(until: 70) - ((5000 + 200_000) / 2 * 60 + 200_000 * 10)) < 1e-6)
        #expect(throws: (any Error).self) { try RateProfile.parseRamp("5000:200000") }
        // The planned rate of the second a progress sample covers: the last second of sending ends just after the
        // test's duration and was planned at the full rate; the seconds spent draining after it were planned at none.
        let flat = RateProfile.constant(2000)
        #expect(flat.planned(sampleAt: 5.02, duration: 5) == 2000)
        #expect(flat.planned(sampleAt: 1.0, duration: 5) == 2000)
        #expect(flat.planned(sampleAt: 6.0, duration: 5) == 0)
        #expect(ramp.planned(sampleAt: 30.5, duration: 60) == 102_500)  // the second 29.5-30.5, its middle 30
        #expect(ramp.planned(sampleAt: 0.2, duration: 60) == 5000)
    }

    /// A load test of `rate` events/s for `seconds` on topics with `prefix` of a fresh embedded broker (kept
    /// alive by the caller), over `customers` customers.
    func plan(prefix: String, rate: Double, seconds: Double, customers: Int) throws -> (LoadTest, SimulationParameters, KafkaConfig, EmbeddedBroker) {
        let broker = try EmbeddedBroker(brokers: 1, logger: quiet)
        try createTopics(broker, prefix: prefix, partitions: 3)
        var test = LoadTest()
        test.profile = .constant(rate)
        test.duration = seconds
        test.topicPrefix = prefix
        test.warmup = 0
        var params = try smallWorld()
        params.customers = customers
        return (test, params, KafkaConfig(bootstrapServers: broker.bootstrapServers, ["fetch.wait.max.ms": "10"]), broker)
    }

    @Test func aShortLoadTestAppliesEverythingItSentAndReports() throws {
        let (planned, params, kafka, broker) = try plan(prefix: "lt.", rate: 3000, seconds: 3, customers: 600)
        defer { withExtendedLifetime(broker) {} }
        var test = planned
        test.storm = (1.0, 0, 3, .gatewayTimeout)
        var report = try test.run(parameters: params, scenario: "payment-incident", kafka: kafka, partitions: 3, cluster: "embedded",
                                  stateDirectory: tempDir(), stop: StopSignal(handleSignals: false), logger: quiet) { _ in }
        // Everything planned is sent, the events due at the very end too (it sent 8,999 of 9,000 here).
        #expect(report.sent == 9000)
        #expect(report.delivered == report.sent && report.applied == report.sent && report.accepted == report.sent)
        #expect(report.drained && report.errors == 0)
        #expect(report.endToEnd.count == UInt64(report.sent))
        #expect(report.endToEnd.p50ms <= report.endToEnd.p99ms && report.endToEnd.p99ms <= report.endToEnd.maxms)
        #expect(report.delivery.count == UInt64(report.sent))
        #expect(report.samples.count >= 3)
        #expect(report.samples.reduce(0) { $0 + Int($1.sentRate) } == report.sent)
        #expect(report.checkpoints.count >= 1)
        report.evaluate([try SLO.parse("p99<1us"), try SLO.parse("p99<10m"), try SLO.parse("errors<1")])
        #expect(report.slos.map(\.met) == [false, true, true])
        #expect(!report.slosMet)
        let decoded = try JSONDecoder().decode(LoadReport.self, from: try JSONEncoder().encode(report))
        #expect(decoded.sent == report.sent && decoded.samples.count == report.samples.count)
        #expect(report.html.components(separatedBy: "<svg").count - 1 == 4)
        #expect(report.summaryTable.contains("VIOLATED"))
    }

    /// A second load test on the topics an earlier one left (an external cluster keeps them): it counts only its
    /// own events. It read the old ones too: applied twice what it sent, half of it duplicates, a negative lag.
    @Test func aSecondLoadTestOnTheSameTopicsCountsOnlyItsOwnEvents() throws {
        let (test, params, kafka, broker) = try plan(prefix: "again.", rate: 2000, seconds: 1, customers: 300)
        defer { withExtendedLifetime(broker) {} }
        for round in 1...2 {
            let report = try test.run(parameters: params, scenario: "baseline", kafka: kafka, partitions: 3, cluster: "embedded",
                                      stateDirectory: tempDir(), stop: StopSignal(handleSignals: false), logger: quiet) { _ in }
            #expect(report.sent == 2000, "round \(round)")
            #expect(report.applied == report.sent && report.accepted == report.sent && report.duplicates == 0, "round \(round): \(report.summaryTable)")
            #expect(report.drained && report.samples.allSatisfy { $0.lagMessages >= 0 }, "round \(round): \(report.summaryTable)")
        }
    }

    /// Ctrl-C in the middle of a load test: the producer's service stops first, then the consumer's, whose final
    /// checkpoint holds every message it applied. Stopped at the first per-second sample of a 10-minute plan, so
    /// the run returning at all shows the stop reached both loops.
    @Test func aStoppedLoadTestEndsBothLoopsAndCheckpointsWhatItApplied() throws {
        let (test, params, kafka, broker) = try plan(prefix: "ls.", rate: 2000, seconds: 600, customers: 3000)
        defer { withExtendedLifetime(broker) {} }
        let stop = StopSignal(handleSignals: false)
        let state = tempDir()
        let report = try test.run(parameters: params, scenario: "baseline", kafka: kafka, partitions: 3, cluster: "embedded",
                                  stateDirectory: state, stop: stop, logger: quiet) { _ in stop.stop() }
        #expect(report.sent > 0 && report.samples.count < 600)
        #expect(report.consumerError == nil)
        #expect(report.delivered == report.sent)
        let (snapshot, offsets) = try StateDirectory(state.path).load()
        let checkpointed = offsets.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        #expect(checkpointed == Int64(report.accepted + report.deadLettered + report.duplicates))
        #expect(snapshot.accepted == report.accepted)
    }
}

