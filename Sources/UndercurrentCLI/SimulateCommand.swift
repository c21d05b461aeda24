import Consumer
import Archives
import ArgumentParser
import Events
import Foundation
import Simulation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate the business without Kafka: every event, in event-time order, into an NDJSON archive.",
        discussion: "The archive format is documented in README.md; it is the input of replay and of marts-consumer --from-archive."
    )

    @Option(help: "Archive to write (- for stdout).") var out: String
    @Option(help: "Also write the ground truth (incident windows, churn propensities and churn times) as JSON.") var truth: String?
    @OptionGroup var simulation: SimulationOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        try StartChecks.file(out, "the archive")
        try StartChecks.file(truth, "the ground truth")
        let stop = StopSignal()
        let parameters = try simulation.parameters()
        var run = SimulateRun(world: try simulation.world(parameters))
        let writer = try ArchiveWriter(path: out)
        let started = ContinuousClock.now
        var remaining = RemainingTime(start: parameters.start.ms, end: parameters.end.ms)
        let report = { (n: Int, t: Timestamp) in
            let s = (ContinuousClock.now - started).seconds
            // How far through the simulated time, and the seconds left (a growing business makes more events a day
            // later on: `RemainingTime` allows for it).
            let share = remaining.share(at: t.ms)
            let left = remaining.update(wall: s, simulated: t.ms).map { ", about \(Int($0.rounded())) s left" } ?? ""
            Console.progress("simulated \(n) events, at \(t.month) (\(Int(share * 100))% of the simulated time\(left); \(Int(Double(n) / max(s, 0.001))) events/s)")
        }
        let summary = try OutputFile.writing("the archive", out) { try run.write(to: writer, isStopped: { stop.isStopped }, progress: report) }
        Console.endProgress()
        if stop.isStopped {
            try? FileManager.default.removeItem(atPath: out + ".partial")
            Console.err("interrupted: no archive written")
            throw ExitCode(130)
        }
        try OutputFile.writing("the archive", out) { try writer.close() }
        if let truth {
            let gt = GroundTruth(incidents: run.world.incidents, customers: run.world.truth)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try OutputFile.write(encoder.encode(gt), to: truth, what: "the ground truth")
        }
        let topics = summary.byTopic.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        Console.err("wrote \(summary.events) events (\(topics)) to \(out) in \(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
    }
}

/// What the simulator knows that no event shows, for scoring alerts and risk.
public struct GroundTruth: Codable, Sendable {
    public var incidents: [IncidentWindow]
    public var customers: [CustomerTruth]
}
