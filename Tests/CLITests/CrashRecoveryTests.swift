import Checkpoints
import Archives
import Config
import Consumer
import Events
import Foundation
import Marts
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// The `marts-consumer` executable built beside the tests.
func consumerBinary() throws -> URL { try binary("marts-consumer") }

func writeArchive(_ p: SimulationParameters, to path: String) throws -> Int {
    var run = SimulateRun(world: try World(p))
    let writer = try ArchiveWriter(path: path)
    let summary = try run.write(to: writer)
    try writer.close()
    return summary.events
}

/// Starts `binary` with `args` `rounds` times and kills each run with SIGKILL after a random delay up to
/// `maxDelay` seconds (unless it finished first); returns how many runs were killed.
func killRepeatedly(_ binary: URL, _ args: [String], rounds: Int, maxDelay: Double, rng: inout Xoshiro) throws -> Int {
    var kills = 0
    for _ in 0..<rounds {
        let child = Process()
        child.executableURL = binary
        child.arguments = args
        child.standardError = FileHandle.nullDevice
        try child.run()
        Thread.sleep(forTimeInterval: rng.uniform(0.05, maxDelay))
        if child.isRunning {
            kill(child.processIdentifier, SIGKILL)
            kills += 1
        }
        child.waitUntilExit()
    }
    return kills
}

@Suite(.serialized) struct CrashRecoveryTests {
    @Test func consumerKilledWithSIGKILLManyTimesEndsWithTheUninterruptedMarts() throws {
        let binary = try consumerBinary()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        let total = try writeArchive(try smallWorld(), to: archive)

        // The uninterrupted run, in process.
        let reference = dir.appendingPathComponent("reference")
        var options = MartsConsumer.Options(stateDirectory: reference)
        options.checkpointEvents = 300
        try MartsConsumer(options: options, logger: quiet).run(archive: archive, partitionCount: 4, stop: StopSignal(handleSignals: false))
        let (expected, _) = try StateDirectory(reference.path).load()

        // The same run in a child process, killed at random moments (often in the middle of a checkpoint:
        // one is written every 300 events) and restarted.
        let state = dir.appendingPathComponent("crashed")
        var rng = Xoshiro(seed: 99)
        let kills = try killRepeatedly(binary, ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path,
                                                "--checkpoint-events", "300", "--log-level", "error"], rounds: 12, maxDelay: 0.9, rng: &rng)
        // A last run to the end.
        let last = Process()
        last.executableURL = binary
        last.arguments = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--log-level", "error"]
        last.standardError = FileHandle.nullDevice
        try last.run()
        last.waitUntilExit()
        #expect(last.terminationStatus == 0)
        #expect(kills >= 6, "only \(kills) runs were killed before they finished")

        let (got, _) = try StateDirectory(state.path).load()
        // Nothing lost, nothing counted twice: every event accepted exactly once, no duplicates seen.
        #expect(got.accepted == total)
        #expect(got.duplicates == 0)
        #expect(got.tables() == expected.tables())
    }

    @Test func corruptCheckpointStopsTheConsumerWithAClearErrorUntilRebuild() throws {
        let binary = try consumerBinary()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        let total = try writeArchive(try smallWorld(), to: archive)
        let state = dir.appendingPathComponent("state")
        func runConsumer(_ extra: [String]) throws -> (Int32, String) {
            let child = Process()
            child.executableURL = binary
            child.arguments = ["--from-archive", archive, "--partitions", "2", "--state-dir", state.path, "--checkpoint-events", "500",
                               "--log-level", "error"] + extra
            let err = Pipe()
            child.standardError = err
            try child.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            child.waitUntilExit()
            return (child.terminationStatus, text)
        }
        #expect(try runConsumer([]).0 == 0)
        let log = state.appendingPathComponent("partition-0/log.bin")
        var bytes = [UInt8](try Data(contentsOf: log))
        bytes[40] ^= 0x5A
        try Data(bytes).write(to: log)
        let (status, message) = try runConsumer([])
        #expect(status == 2)
        #expect(message.contains("partition-0/log.bin") && message.contains("--rebuild"))
        #expect(try runConsumer(["--rebuild"]).0 == 0)
        let (snapshot, _) = try StateDirectory(state.path).load()
        #expect(snapshot.accepted == total)
    }

    /// Alerts survive crashes: the engine's state is checkpointed with the offsets it covers, so a consumer
    /// killed again and again during a spike ends with the alerts of an uninterrupted run (an alert raised
    /// after the last checkpoint may be logged twice: alerts are delivered at least once).
    @Test func alertsSurviveSIGKILLDuringASpike() throws {
        let binary = try consumerBinary()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("spike.ndjson").path
        let events = spikeEvents()
        let writer = try ArchiveWriter(path: archive)
        for e in events { try writer.write(ArchiveRecord(event: e, value: EventEncoder.encode(e))) }
        try writer.close()
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)

        let reference = dir.appendingPathComponent("reference")
        var options = MartsConsumer.Options(stateDirectory: reference)
        options.alertRules = rules
        options.checkpointEvents = 300
        let uninterrupted = MartsConsumer(options: options, logger: quiet)
        try uninterrupted.run(archive: archive, partitionCount: 4, stop: StopSignal(handleSignals: false))
        let expected = uninterrupted.alerts.map(\.json)
        #expect(expected.count >= 2)

        let state = dir.appendingPathComponent("crashed")
        // First a run that stops 15 minutes before the spike: an engine that restarted empty would have too
        // little baseline when the spike begins (and would learn the spike into it).
        let spikeStart = events[2 * 24 * 60 * 6].occurredAt
        let first = Process()
        first.executableURL = binary
        first.arguments = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "300",
                           "--until", spikeStart.adding(ms: -15 * 60_000).description, "--config-dir", repoConfig.path, "--log-level", "error"]
        first.standardError = FileHandle.nullDevice
        try first.run()
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        var rng = Xoshiro(seed: UInt64(Date().timeIntervalSince1970))
        let kills = try killRepeatedly(binary, ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "300",
                                                "--config-dir", repoConfig.path, "--log-level", "error"], rounds: 10, maxDelay: 1.2, rng: &rng)
        let last = Process()
        last.executableURL = binary
        last.arguments = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--config-dir", repoConfig.path, "--log-level", "error"]
        last.standardError = FileHandle.nullDevice
        try last.run()
        last.waitUntilExit()
        #expect(last.terminationStatus == 0)
        #expect(kills >= 3, "only \(kills) runs were killed before they finished")
        #expect(AlertLog.read(stateDirectory: state).map(\.json) == expected)
    }
}
