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

/// What a state directory holds now: each file's path, size and modification time.
func stateFingerprint(_ dir: URL) -> [String] {
    guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .contentModificationDateKey]) else { return [] }
    return e.compactMap { item -> String? in
        guard let url = item as? URL, let v = try? url.resourceValues(forKeys: [.fileSizeKey, .contentModificationDateKey]) else { return nil }
        return "\(url.path) \(v.fileSize ?? -1) \(v.contentModificationDate?.timeIntervalSince1970 ?? 0)"
    }.sorted()
}

/// Runs `binary` with `args` again and again until a run finishes by itself, killing each run with SIGKILL
/// once it has changed a file of `state` one to six times (checkpoint writes seen happening, not guessed from a delay, so
/// the kills land as well on a fast machine as on a loaded one). Returns how many runs were killed and
/// the exit status of the run that finished.
func killOnProgress(_ binary: URL, _ args: [String], state: URL, rng: inout Xoshiro, maxRounds: Int = 200) throws -> (kills: Int, status: Int32?) {
    var kills = 0
    for _ in 0..<maxRounds {
        let child = Process()
        child.executableURL = binary
        child.arguments = args
        child.standardError = FileHandle.nullDevice
        var seen = stateFingerprint(state)
        try child.run()
        let wanted = 1 + Int(rng.next() % 6)
        var changes = 0
        while child.isRunning && changes < wanted {
            usleep(300)
            let now = stateFingerprint(state)
            if now != seen {
                changes += 1
                seen = now
            }
        }
        if child.isRunning {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            kills += 1
        } else {
            child.waitUntilExit()
            return (kills, child.terminationStatus)
        }
    }
    return (kills, nil)
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
        // one is written every 100 events of a partition) and restarted.
        let state = dir.appendingPathComponent("crashed")
        var rng = Xoshiro(seed: 99)
        let (kills, status) = try killOnProgress(binary, ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path,
                                                          "--checkpoint-events", "100", "--log-level", "error"], state: state, rng: &rng)
        #expect(status == 0)
        #expect(kills >= 6, "only \(kills) runs were killed before one finished")

        let (got, _) = try StateDirectory(state.path).load()
        // Nothing lost, nothing counted twice: every event accepted exactly once, no duplicates seen.
        #expect(got.accepted == total)
        #expect(got.duplicates == 0)
        #expect(got.tables() == expected.tables())
    }

    /// Ctrl-C during an archive replay: the final checkpoint is taken and the exit status says the job did not
    /// finish (130, as `replay` and `simulate`; it was 0, as for a service, so a script went on as if the marts
    /// were whole). The same command then resumes and finishes with every event counted once.
    @Test func aReplayStoppedBySIGINTExits130AndTheSameCommandFinishesIt() throws {
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        var p = try smallWorld()
        p.customers = 800  // about 60,000 events, hundreds of checkpoints: the signal lands at the first one seen
        let total = try writeArchive(p, to: archive)
        let state = dir.appendingPathComponent("state")
        let args = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "100", "--log-level", "error"]
        let child = Process()
        child.executableURL = try consumerBinary()
        child.arguments = args
        child.standardError = FileHandle.nullDevice
        try child.run()
        // A checkpoint written (a partition's log no longer empty): the replay is under way, its signal handling too.
        func checkpointed() -> Bool {
            (0..<4).contains { p in
                let log = state.appendingPathComponent("partition-\(p)/log.bin").path
                return ((try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? 0) > 0
            }
        }
        while child.isRunning && !checkpointed() { usleep(300) }
        #expect(child.isRunning, "the replay ended before a checkpoint was seen")
        kill(child.processIdentifier, SIGINT)
        child.waitUntilExit()
        #expect(child.terminationReason == .exit && child.terminationStatus == 130)
        let (partial, _) = try StateDirectory(state.path).load()
        #expect(partial.accepted > 0 && partial.accepted < total)

        let again = Process()
        again.executableURL = try consumerBinary()
        again.arguments = args
        again.standardError = FileHandle.nullDevice
        try again.run()
        again.waitUntilExit()
        #expect(again.terminationStatus == 0)
        let (whole, _) = try StateDirectory(state.path).load()
        #expect(whole.accepted == total && whole.duplicates == 0)
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
        let events = spikeEvents()
        let archive = try writeArchive(events, in: dir)
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
        // Checkpoints every 50 events of a partition, so the last two hours give the kills plenty of moments.
        let (kills, status) = try killOnProgress(binary, ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "50",
                                                          "--config-dir", repoConfig.path, "--log-level", "error"], state: state, rng: &rng)
        #expect(status == 0)
        #expect(kills >= 3, "only \(kills) runs were killed before one finished")
        #expect(AlertLog.read(stateDirectory: state).map(\.json) == expected)
    }
}
