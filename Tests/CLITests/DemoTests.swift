import Checkpoints
import Foundation
import Testing
import TestSupport

/// The main job end to end, as the README runs it: the embedded broker, the three producers and the consumer in
/// one process.
@Suite struct DemoTests {
    /// Runs `undercurrent demo` with these arguments; its exit status, standard output and standard error.
    func demo(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = tempDir()
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        for f in [out, err] { FileManager.default.createFile(atPath: f.path, contents: nil) }
        let p = Process()
        p.executableURL = try binary("undercurrent")
        p.arguments = ["demo"] + arguments + ["--state-dir", dir.appendingPathComponent("state").path]
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    /// The numbers of the "counted: …" line: simulated, delivered, consumed, accepted, duplicates, rejected, lost
    /// to retention, and (when the broker deleted messages after they were read) how many it deleted.
    func counted(_ stdout: String) throws -> [Int] {
        let line = try #require(stdout.split(separator: "\n").first { $0.hasPrefix("counted: ") }, "\(stdout)")
        return line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
    }

    @Test func theDemoCountsEveryEventOnceAndEndsWithoutAWarning() throws {
        let (status, stdout, stderr) = try demo(["--customers", "300", "--months", "3"])
        #expect(status == 0, "\(stderr)")
        #expect(stdout.contains("Executive KPIs (as of "), "\(stdout)")
        // What to fix first: at this size (three months) the narrative cannot conclude yet, and says so.
        #expect(stdout.contains("what to fix first: not known yet. Too little data to conclude"), "\(stdout)")
        // "counted: N events simulated, N delivered, N consumed (offsets), N accepted, 0 duplicates, 0 rejected; 0 lost …"
        let numbers = try counted(stdout)
        #expect(numbers.count == 7 && numbers[0] > 1000 && numbers[0...3].allSatisfy { $0 == numbers[0] } && numbers[4...].allSatisfy { $0 == 0 },
                "\(numbers)")
        // Nothing the user should worry about: the broker stops after every client is gone.
        let worrying = stderr.split(separator: "\n").filter { $0.contains("warning") || $0.contains("error") }
        #expect(worrying.isEmpty, "\(worrying)")
    }

    /// A demo larger than the embedded broker keeps (5 MiB a partition; here one partition a topic and 176,505
    /// events, of which the broker deletes about 65,000): the producers wait for the consumer, so the broker deletes
    /// messages only after they were read, and every event is counted once. Without the wait, the consumer found
    /// the start of its history deleted and the demo failed.
    @Test func aDemoLargerThanTheBrokerKeepsLosesNothing() throws {
        let (status, stdout, stderr) = try demo(["--customers", "2000", "--months", "12", "--partitions", "1"])
        #expect(status == 0, "\(stderr)")
        let numbers = try counted(stdout)
        // simulated = delivered = consumed = accepted; no duplicate, no rejection, none lost; and the broker did delete.
        #expect(numbers.count == 8 && numbers[0...3].allSatisfy { $0 == numbers[0] } && numbers[4...6].allSatisfy { $0 == 0 } && numbers[7] > 0,
                "\(numbers)")
        #expect(!stderr.contains("partial history") && !stderr.contains("lost"), "\(stderr)")
    }

    /// The demo holds its alerts against the scenario's ground truth: an outage injected into a business of 10,000
    /// customers (6 hours of 90% of first attempts failing with processing_error) is reported caught, with its
    /// delay and scope, and every alert that fired is either about it or counted as about no incident.
    @Test func theDemoReportsItsAlertsAgainstTheInjectedIncidents() throws {
        let config = tempDir()
        try FileManager.default.createDirectory(at: config.appendingPathComponent("scenarios"), withIntermediateDirectories: true)
        for file in ["baseline.yaml", "alerts.yaml"] {
            try FileManager.default.copyItem(at: repoConfig.appendingPathComponent(file), to: config.appendingPathComponent(file))
        }
        try """
        incidents:
          - {name: early-outage, startDay: 45.5, hours: 6, reason: processing_error, failureRate: 0.9}
          - {name: after-the-run, startDay: 200, hours: 2, reason: expired_card, failureRate: 0.5}
        """.write(to: config.appendingPathComponent("scenarios/outage.yaml"), atomically: true, encoding: .utf8)
        let (status, stdout, stderr) = try demo(["--customers", "10000", "--months", "2", "--scenario", "outage", "--config-dir", config.path])
        #expect(status == 0, "\(stderr)")
        let lines = stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.firstIndex(of: "the scenario's injected incidents against the alerts (1 more outside the simulated time):"), "\(stdout)")
        let incident = lines[header + 1]
        let prefix = "  early-outage (2024-02-15 12:00 UTC, reason processing_error at 90%, 6.0 h): first alert after "
        #expect(incident.hasPrefix(prefix), "\(incident)")
        let delay = try #require(Int(incident.dropFirst(prefix.count).prefix { $0.isNumber }), "\(incident)")
        #expect(delay < 6 * 60, "\(incident)")
        // Every alert that fired is about the incident or about none.
        func number(before suffix: String, in line: String) -> Int? {
            guard let r = line.range(of: suffix) else { return nil }
            return Int(line[..<r.lowerBound].split(whereSeparator: { !$0.isNumber }).last ?? "")
        }
        let fired = try #require(lines.first { $0.hasPrefix("alerts: ") }.flatMap { number(before: " fired", in: $0) }, "\(stdout)")
        let about = try #require(number(before: " alert(s) about it", in: incident), "\(incident)")
        let falseLine = try #require(lines.first { $0.hasPrefix("alerts about no injected incident: ") }, "\(stdout)")
        let unrelated = try #require(Int(falseLine.dropFirst("alerts about no injected incident: ".count).prefix { $0.isNumber }), "\(falseLine)")
        #expect(fired >= 1 && about >= 1 && about + unrelated == fired, "\(stdout)")
    }

    /// Ctrl-C stops the demo's four loops (three producers, the consumer), which run as services of one group:
    /// the status says it did not finish (130), it says where the consumer's state is, prints no KPIs and no
    /// counts (they would not agree), and the state directory holds a consistent checkpoint. Before, the loops
    /// were bare threads; a group shut down gracefully in order took a producer that stopped before its turn for
    /// a failure ("finished unexpectedly").
    @Test func ctrlCStopsTheDemoWithItsStateCheckpointed() throws {
        let dir = tempDir()
        let state = dir.appendingPathComponent("state")
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        for f in [out, err] { FileManager.default.createFile(atPath: f.path, contents: nil) }
        let p = Process()
        p.executableURL = try binary("undercurrent")
        // About ten million events: minutes of work, stopped at its first checkpoint (every 2 s).
        p.arguments = ["demo", "--customers", "50000", "--months", "24", "--partitions", "4", "--state-dir", state.path]
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        func checkpointed() -> Bool {
            (0..<4).contains { k in
                ((try? FileManager.default.attributesOfItem(atPath: state.appendingPathComponent("partition-\(k)/log.bin").path)[.size] as? Int) ?? 0) > 0
            }
        }
        while p.isRunning && !checkpointed() { usleep(1000) }
        #expect(p.isRunning, "the demo ended before a checkpoint was seen")
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let stdout = try String(contentsOf: out, encoding: .utf8), stderr = try String(contentsOf: err, encoding: .utf8)
        #expect(p.terminationReason == .exit && p.terminationStatus == 130, "\(stderr)")
        #expect(stderr.contains("demo: stopped; what the consumer had taken in is checkpointed in \(state.path)"), "\(stderr)")
        #expect(!stderr.contains("finished unexpectedly") && !stdout.contains("counted: ") && !stdout.contains("Executive KPIs"), "\(stdout)\n\(stderr)")
        let (snapshot, offsets) = try StateDirectory(state.path).load()
        let consumed = offsets.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + Int($1) } }
        #expect(snapshot.accepted > 0 && snapshot.accepted == consumed && snapshot.duplicates == 0 && snapshot.rejected == 0,
                "accepted \(snapshot.accepted), offsets \(consumed)")
    }
}
