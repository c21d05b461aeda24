import Events
import Foundation
import Simulation
import Testing
import TestSupport

/// The ten marts recomputed in batch by DuckDB (`Benchmarks/compare/duckdb_marts.py`, SQL written from
/// docs/marts.md, risk model included) equal the consumer's export file for file, byte for byte, on a history
/// replayed shuffled and with duplicates.
@Suite struct DuckDBMartsTests {
    static let python = repoRoot.appendingPathComponent(".build/venv/bin/python")
    static let script = repoRoot.appendingPathComponent("Benchmarks/compare/duckdb_marts.py")

    @Test(arguments: [UInt64(11), 12])
    func duckDBsBatchRecomputeEqualsTheExportOfAShuffledReplayWithDuplicates(seed: UInt64) throws {
        guard (try? runProcess(Self.python.path, ["-c", "import duckdb"]))?.status == 0 else {
            throw TestSetupError("duckdb is not installed in \(Self.python.path) (scripts/test.sh makes that virtual environment)")
        }
        let events = simulatedEvents(customers: 400, months: 14, seed: seed)
        var rng = Xoshiro(seed: seed)
        var input = events + events.filter { _ in Double.random(in: 0..<1, using: &rng) < 0.1 }
        input.shuffle(using: &rng)
        let dir = tempDir()
        let archive = try writeArchive(input, in: dir, named: "history.ndjson")

        let state = dir.appendingPathComponent("state").path
        let replay = try runProcess(try binary("marts-consumer").path,
                                    ["--from-archive", archive, "--partitions", "4", "--state-dir", state, "--log-level", "warning"])
        #expect(replay.status == 0, "\(replay.output)")
        #expect(replay.output.contains("accepted \(Set(events.map(\.eventID)).count), duplicates \(input.count - events.count),"), "\(replay.output)")
        let ours = dir.appendingPathComponent("export"), theirs = dir.appendingPathComponent("duckdb")
        #expect(try runProcess(try binary("undercurrent").path, ["marts", "export", "--state-dir", state, "--out", ours.path]).status == 0)
        let duck = try runProcess(Self.python.path, [Self.script.path, archive, theirs.path])
        #expect(duck.status == 0, "\(duck.output)")

        let files = try FileManager.default.contentsOfDirectory(atPath: ours.path).filter { $0.hasSuffix(".csv") }.sorted()
        #expect(files.count == 10)
        for file in files {
            let a = try String(contentsOf: ours.appendingPathComponent(file), encoding: .utf8)
            let b = (try? String(contentsOf: theirs.appendingPathComponent(file), encoding: .utf8)) ?? "(missing)"
            let diff = zip(a.split(separator: "\n"), b.split(separator: "\n")).first { $0 != $1 }
            let same = a == b  // not compared inside #expect, which would print both whole files
            #expect(same, "\(file) differs: \(diff.map { "ours \($0.0) / duckdb \($0.1)" } ?? "in its number of rows")")
        }
        // The comparison covers the parts of the spec that are easy to get wrong: dunning outcomes, reactivations,
        // scored customers in several segments.
        let c360 = try String(contentsOf: ours.appendingPathComponent("mart_customer_360.csv"), encoding: .utf8)
        #expect(Set(["low", "medium", "high"]).allSatisfy { c360.contains(",\($0),") })
        let recovery = try String(contentsOf: ours.appendingPathComponent("mart_recovery_opportunity.csv"), encoding: .utf8)
        #expect(recovery.split(separator: "\n").count > 5)
        let mrr = try String(contentsOf: ours.appendingPathComponent("mart_mrr_movements.csv"), encoding: .utf8)
        #expect(mrr.split(separator: "\n").dropFirst().contains { $0.split(separator: ",")[3] != "0" }, "no reactivation MRR")
    }
}
