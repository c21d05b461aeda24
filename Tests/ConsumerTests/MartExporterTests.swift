import Consumer
import Foundation
import Marts
import Testing
import TestSupport

/// An export into a directory that holds an earlier export in the other format: the marts' files of that format are
/// removed (they would stand beside the new export, older than its manifest); any other file is left alone.
@Suite struct MartExporterTests {
    @Test func anExportInTheOtherFormatReplacesTheMartsFilesAndNothingElse() throws {
        let dir = tempDir()
        let early = MartSnapshot([martState(Array(simulatedEvents(customers: 40, months: 3).prefix(500)))])
        let late = MartSnapshot([martState(simulatedEvents(customers: 40, months: 3))])
        try Data("kept".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        try Data("kept".utf8).write(to: dir.appendingPathComponent("mart_mine.json"))
        func files(_ ext: String) throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("mart_") && $0.hasSuffix("." + ext) })
        }
        let names = Set(MartSnapshot.martNames)
        #expect(names.count == 10)
        for (snapshot, json) in [(early, true), (late, false), (early, true)] {
            try MartExporter.write(snapshot, offsets: [:], to: dir, json: json)
            let (written, other) = json ? ("json", "csv") : ("csv", "json")
            #expect(try files(written).subtracting(["mart_mine.json"]) == Set(names.map { "\($0).\(written)" }))
            #expect(try files(other).subtracting(["mart_mine.json"]).isEmpty, "\(other) files of an earlier export left beside a \(written) one")
            let revenue = try String(contentsOf: dir.appendingPathComponent("mart_revenue_monthly.\(written)"), encoding: .utf8)
            #expect(revenue == (json ? snapshot.tables().first { $0.name == "mart_revenue_monthly" }!.json
                                     : snapshot.tables().first { $0.name == "mart_revenue_monthly" }!.csv))
        }
        #expect(try String(contentsOf: dir.appendingPathComponent("notes.txt"), encoding: .utf8) == "kept")
        #expect(try String(contentsOf: dir.appendingPathComponent("mart_mine.json"), encoding: .utf8) == "kept")
    }
}
