import Foundation
import Marts

/// The alert engine's checkpoint: `STATE_DIR/alert-engine.bin`, written (temporary file, fsync, rename)
/// just before the partitions' checkpoints, with the input offsets it covers. On restart the engine is
/// restored and fed only messages at or past those offsets, so it sees every payment attempt once even
/// though a partition may resume from an older checkpoint. Rules changed since (a different fingerprint)
/// discard it: the engine then starts empty, as it would on a first run.
///
/// Layout: "UCAE", format version (u16), payload length (u32), CRC-32 of the payload (u32), payload:
/// rules fingerprint, offsets (topic → partition → next offset), the engine state (version 2 adds the
/// sequential detector's state at its end).
public struct AlertStateStore: Sendable {
    public static let fileName = "alert-engine.bin"
    static let magic: [UInt8] = Array("UCAE".utf8)
    static let version: UInt16 = 2

    public let url: URL

    public init(stateDirectory: URL) {
        url = stateDirectory.appendingPathComponent(Self.fileName)
    }

    public struct Loaded: Sendable {
        public var state: AlertEngine.State
        public var offsets: [String: [Int32: Int64]]
        /// The fingerprint of the rules it was written under (`AlertRules.fingerprint`: the rules as JSON).
        public var rules: String
        public init(state: AlertEngine.State, offsets: [String: [Int32: Int64]], rules: String = "") {
            self.state = state
            self.offsets = offsets
            self.rules = rules
        }
    }

    public func write(_ state: AlertEngine.State, rules: String, offsets: [String: [Int32: Int64]]) throws {
        var w = BinaryWriter()
        w.string(rules)
        w.u32(UInt32(offsets.count))
        for (topic, parts) in offsets.sorted(by: { $0.key < $1.key }) {
            w.string(topic)
            w.u32(UInt32(parts.count))
            for (p, o) in parts.sorted(by: { $0.key < $1.key }) {
                w.i32(p)
                w.i64(o)
            }
        }
        w.u32(UInt32(state.buckets.count))
        for b in state.buckets {
            w.i64(b.minute)
            w.u32(UInt32(b.counts.count))
            for c in b.counts { w.i32(c) }
        }
        w.u32(UInt32(state.points.count))
        for p in state.points {
            w.i64(p.minute)
            w.u32(UInt32(p.totals.count))
            for t in p.totals { w.i64(t) }
        }
        w.u32(UInt32(state.sourceTimes.count))
        for s in state.sourceTimes {
            w.i64(Int64(s.source))
            w.i64(s.time)
        }
        w.optI64(state.nextEvaluation)
        w.u32(UInt32(state.open.count))
        for o in state.open {
            w.string(o.key)
            w.i64(o.since)
            w.i64(Int64(o.quietEvaluations))
            w.u64(o.rate.bitPattern)
            w.u64(o.baseline.bitPattern)
            w.i64(Int64(o.attempts))
            w.i64(Int64(o.failures))
        }
        w.i64(Int64(state.lateAttempts))
        w.u32(UInt32(state.sequential.count))  // version 2
        w.bytes.append(contentsOf: state.sequential)

        var file = BinaryWriter()
        file.bytes.append(contentsOf: Self.magic)
        file.u16(Self.version)
        file.u32(UInt32(w.bytes.count))
        file.u32(CRC32.of(w.bytes))
        file.bytes.append(contentsOf: w.bytes)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try writeAtomically([file.bytes], to: url)
    }

    /// nil when there is none or it was written for other rules (nil `rules`: any); an error when it is damaged.
    public func load(rules: String?) throws -> Loaded? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let bytes = [UInt8](data)
        func bad(_ problem: String) -> CheckpointError { CheckpointError(partition: -1, file: url.path, problem: problem) }
        guard bytes.count >= 14, Array(bytes[0..<4]) == Self.magic else { throw bad("not an alert engine checkpoint") }
        var r = BinaryReader(bytes[4...])
        do {
            let version = try r.u16()
            guard version <= Self.version else { throw bad("format version \(version) is newer than this program's \(Self.version)") }
            let length = Int(try r.u32()), crc = try r.u32()
            let payload = try r.take(length)
            guard CRC32.of(payload) == crc else { throw bad("checksum mismatch") }
            var p = BinaryReader(payload)
            let written = try p.string()
            guard rules == nil || written == rules else { return nil }
            var offsets: [String: [Int32: Int64]] = [:]
            for _ in 0..<(try p.u32()) {
                let topic = try p.string()
                for _ in 0..<(try p.u32()) { offsets[topic, default: [:]][try p.i32()] = try p.i64() }
            }
            var buckets: [(minute: Int64, counts: [Int32])] = []
            for _ in 0..<(try p.u32()) {
                let m = try p.i64()
                var counts: [Int32] = []
                for _ in 0..<(try p.u32()) { counts.append(try p.i32()) }
                buckets.append((m, counts))
            }
            var points: [(minute: Int64, totals: [Int64])] = []
            for _ in 0..<(try p.u32()) {
                let m = try p.i64()
                var totals: [Int64] = []
                for _ in 0..<(try p.u32()) { totals.append(try p.i64()) }
                points.append((m, totals))
            }
            var sources: [(source: Int, time: Int64)] = []
            for _ in 0..<(try p.u32()) { sources.append((Int(try p.i64()), try p.i64())) }
            let next = try p.optI64()
            var open: [AlertEngine.State.OpenIncident] = []
            for _ in 0..<(try p.u32()) {
                open.append(AlertEngine.State.OpenIncident(key: try p.string(), since: try p.i64(), quietEvaluations: Int(try p.i64()),
                                                           rate: Double(bitPattern: try p.u64()), baseline: Double(bitPattern: try p.u64()),
                                                           attempts: Int(try p.i64()), failures: Int(try p.i64())))
            }
            let late = Int(try p.i64())
            let sequential = version >= 2 ? Array(try p.take(Int(try p.u32()))) : []
            return Loaded(state: AlertEngine.State(buckets: buckets, points: points, sourceTimes: sources, nextEvaluation: next,
                                                   open: open, lateAttempts: late, sequential: sequential), offsets: offsets, rules: written)
        } catch let e as CheckpointError {
            throw e
        } catch {
            throw bad("truncated or malformed")
        }
    }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}
