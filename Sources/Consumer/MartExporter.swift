import Checkpoints
import Foundation
import Marts

/// Writes the marts of a snapshot as files (`undercurrent marts export`).
public enum MartExporter {
    /// Writes one CSV per mart and manifest.json (or one JSON file per mart with `json`). A mart's file in the
    /// other format, from an earlier export into the same directory, is removed: it would stand beside this export
    /// older than its manifest. Other files are left alone.
    public static func write(_ snapshot: MartSnapshot, offsets: [String: [Int32: Int64]], history: [HistoryStart] = [], to dir: URL, json: Bool) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for table in snapshot.tables() {
            let stale = dir.appendingPathComponent("\(table.name).\(json ? "csv" : "json")")
            if FileManager.default.fileExists(atPath: stale.path) { try FileManager.default.removeItem(at: stale) }
            if json {
                // The API's form: an array of objects in column order, values as in the CSV.
                try Data(table.json.utf8).write(to: dir.appendingPathComponent("\(table.name).json"), options: .atomic)
            } else {
                try Data(table.csv.utf8).write(to: dir.appendingPathComponent("\(table.name).csv"), options: .atomic)
            }
        }
        let manifest = Manifest(asOf: snapshot.asOf?.description, accepted: snapshot.accepted, duplicates: snapshot.duplicates,
                                rejected: snapshot.rejected,
                                offsets: offsets.mapValues { Dictionary(uniqueKeysWithValues: $0.map { (String($0.key), $0.value) }) },
                                marts: MartSnapshot.martNames,
                                history: HistoryReport(history, customersWithoutSignup: snapshot.customersWithoutSignup))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(manifest)
        try data.write(to: dir.appendingPathComponent("manifest.json"), options: .atomic)
    }

    /// `manifest.json`: what the export reflects.
    struct Manifest: Encodable {
        var asOf: String?
        var accepted: Int
        var duplicates: Int
        var rejected: Int
        /// Next offset per input topic and partition number.
        var offsets: [String: [String: Int64]]
        var marts: [String]
        /// Where each input's history starts, and whether any is partial.
        var history: HistoryReport

        enum CodingKeys: String, CodingKey { case asOf = "as_of", accepted, duplicates, rejected, offsets, marts, history }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(asOf, forKey: .asOf)  // null, not absent, before any event
            try c.encode(accepted, forKey: .accepted)
            try c.encode(duplicates, forKey: .duplicates)
            try c.encode(rejected, forKey: .rejected)
            try c.encode(offsets, forKey: .offsets)
            try c.encode(marts, forKey: .marts)
            try c.encode(history, forKey: .history)
        }
    }
}
