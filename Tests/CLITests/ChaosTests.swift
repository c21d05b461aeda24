import Checkpoints
import Consumer
import Events
import Foundation
import Kafka
import Marts
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// The simulated world of `smallWorld()` as producer flags.
let worldFlags = ["--scenario", "payment-incident", "--seed", "3", "--customers", "120", "--start", "2024-01-01", "--months", "10",
                  "--config-dir", repoConfig.path]

/// Crash consistency through Kafka: the producers and the consumer run as processes; the consumer is killed
/// with SIGKILL at random moments (often inside a checkpoint: one is taken every 100 ms) and a producer is
/// killed and restarted from scratch. The marts end equal to the batch of the simulated events, and every
/// consumed offset is counted exactly once (accepted + duplicates + rejected = the offsets the checkpoints hold).
@Suite(.serialized) struct ChaosTests {
    static let consumerKills = Int(ProcessInfo.processInfo.environment["UNDERCURRENT_CHAOS_ROUNDS"] ?? "") ?? 20

    @Test func consumerAndProducersKilledAtRandomEndWithTheUninterruptedMarts() throws {
        let p = try smallWorld()
        let events = Array(try World(p))
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        let kafka = ["--bootstrap-servers", broker.bootstrapServers]
        let dir = tempDir()
        let state = dir.appendingPathComponent("state")
        var rng = Xoshiro(seed: UInt64(Date().timeIntervalSince1970))

        // Producers paced so that production spans the first kills. The payments producer is killed once
        // and restarted: it sends its stream again from the start (idempotent ids: duplicates, not new events).
        var producers = try ["billing-producer", "payments-producer", "engagement-producer"].map { name in
            try launch(name, worldFlags + kafka + ["--rate", "1500"])
        }
        Thread.sleep(forTimeInterval: rng.uniform(0.5, 1.5))
        // The executables allocate with jemalloc (Package.swift), librdkafka's allocations included.
        var mapsRead = 0
        for producer in producers where producer.isRunning {
            // Read to the end: /proc files report a size of 0, and a read of that size stops early.
            guard let file = FileHandle(forReadingAtPath: "/proc/\(producer.processIdentifier)/maps"),
                  let bytes = try? file.readToEnd() else { continue }
            mapsRead += 1
            #expect(String(decoding: bytes, as: UTF8.self).contains("/libjemalloc.so"))
        }
        #expect(mapsRead > 0)
        if producers[1].isRunning { kill(producers[1].processIdentifier, SIGKILL) }
        producers[1].waitUntilExit()
        producers[1] = try launch("payments-producer", worldFlags + kafka + ["--rate", "3000"])

        var kills = 0, round = 0
        while kills < Self.consumerKills && round < Self.consumerKills * 3 {
            round += 1
            // A fresh group per run: offsets come from the checkpoints, and no dead member has to time out.
            let c = try launch("marts-consumer", ["--state-dir", state.path, "--group", "chaos-\(round)", "--checkpoint-ms", "100",
                                                  "--checkpoint-events", "500", "--no-alerts", "--log-level", "error",
                                                  "-X", "fetch.wait.max.ms=20"] + kafka)
            Thread.sleep(forTimeInterval: rng.uniform(0.3, 3.5))
            if c.isRunning {
                kill(c.processIdentifier, SIGKILL)
                kills += 1
            }
            c.waitUntilExit()
        }
        for producer in producers {
            producer.waitUntilExit()
            #expect(producer.terminationStatus == 0)
        }
        let log = dir.appendingPathComponent("last.log")
        let last = try launch("marts-consumer", ["--state-dir", state.path, "--group", "chaos-last", "--exit-when-idle", "3",
                                                 "--no-alerts", "--log-level", "warning"] + kafka, stderr: log)
        last.waitUntilExit()
        #expect(last.terminationStatus == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        #expect(kills >= Self.consumerKills)

        let (got, offsets) = try StateDirectory(state.path).load()
        var reference = MartState()
        for e in events { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(got.accepted == events.count)
        #expect(got.rejected == 0)
        #expect(got.tables() == MartSnapshot([reference]).tables())
        // Per partition: every offset consumed is counted once, as accepted or as a duplicate.
        let consumed = offsets.values.reduce(Int64(0)) { $0 + $1.values.reduce(0, +) }
        #expect(consumed == Int64(got.accepted + got.duplicates + got.rejected))
        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
        var high: Int64 = 0
        for t in Topics.inputs { for part in 0..<4 { high += try admin.watermarks(TopicPartition(t, Int32(part))).high } }
        #expect(consumed == high)
        #expect(got.duplicates > 0, "the restarted producer re-sent its events")
    }

    /// SIGTERM: a final checkpoint and exit 0 within a bounded time, and nothing consumed is lost.
    @Test func sigtermTakesAFinalCheckpointAndExitsPromptly() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 2, addressFile: nil).start(logger: quiet)
        let delivered = try produce(p, to: broker)
        let state = tempDir().appendingPathComponent("state")
        let metrics = state.deletingLastPathComponent().appendingPathComponent("metrics.prom")
        let c = try launch("marts-consumer", ["--state-dir", state.path, "--checkpoint-ms", "600000", "--checkpoint-events", "1000000",
                                              "--metrics-file", metrics.path, "--report-seconds", "0.3",
                                              "--no-alerts", "--log-level", "error", "--bootstrap-servers", broker.bootstrapServers])
        // Wait until it has taken in everything; no checkpoint is due on its own for ten minutes.
        let done = "undercurrent_input_messages_total{outcome=\"accepted\"} \(delivered)\n"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && c.isRunning && !((try? String(contentsOf: metrics, encoding: .utf8))?.contains(done) ?? false) {
            Thread.sleep(forTimeInterval: 0.2)
        }
        // No checkpoint yet: everything the final state holds comes from the one SIGTERM takes.
        let files = FileManager.default.enumerator(atPath: state.path)?.allObjects as? [String] ?? []
        #expect(!files.contains { $0.hasSuffix("log.bin") || $0.hasSuffix("snapshot.bin") }, "\(files)")
        let sent = Date()
        kill(c.processIdentifier, SIGTERM)
        c.waitUntilExit()
        let took = Date().timeIntervalSince(sent)
        #expect(c.terminationReason == .exit && c.terminationStatus == 0)
        #expect(took < 10, "SIGTERM took \(took) s")
        let (got, _) = try StateDirectory(state.path).load()
        #expect(got.accepted == delivered)
    }

    /// A state directory that cannot be written (here: a file where the partition's directory must be):
    /// the consumer reports it, consumes nothing past un-checkpointed state, and resumes once it is fixed.
    @Test func anUnwritableStateDirectoryStopsProgressUntilFixed() throws {
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 1, addressFile: nil).start(logger: quiet)
        let delivered = try produce(p, to: broker)
        let state = tempDir().appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        let blocker = state.appendingPathComponent("partition-0")
        FileManager.default.createFile(atPath: blocker.path, contents: Data("not a directory".utf8))
        let log = state.deletingLastPathComponent().appendingPathComponent("consumer.log")
        let metrics = state.deletingLastPathComponent().appendingPathComponent("metrics.prom")
        let c = try launch("marts-consumer", ["--state-dir", state.path, "--checkpoint-events", "500", "--exit-when-idle", "4",
                                              "--no-alerts", "--log-level", "notice", "--bootstrap-servers", broker.bootstrapServers,
                                              "--metrics-file", metrics.path], stderr: log)
        // It reports the failure and holds.
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !text.contains("checkpoint failed") {
            Thread.sleep(forTimeInterval: 0.3)
            text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        }
        #expect(text.contains("not consuming until it succeeds"))
        // Its metrics count the failed tries while it holds (before, they froze at the last report before them).
        func failures() -> Int? {
            let text = (try? String(contentsOf: metrics, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").first { $0.hasPrefix("undercurrent_checkpoint_failures_total ") }
                .flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
        }
        while Date() < deadline && (failures() ?? 0) < 2 { Thread.sleep(forTimeInterval: 0.1) }
        #expect((failures() ?? 0) >= 2)
        #expect(c.isRunning)
        // Space is back: it writes, resumes and finishes.
        try FileManager.default.removeItem(at: blocker)
        c.waitUntilExit()
        #expect(c.terminationStatus == 0)
        let (got, _) = try StateDirectory(state.path).load()
        #expect(got.accepted == delivered)
        #expect(((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("checkpoint written again"))
    }
}
