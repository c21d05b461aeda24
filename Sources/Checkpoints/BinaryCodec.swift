import Foundation
import Events
import Marts

/// Little-endian binary writing and reading for checkpoint payloads.
struct BinaryWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt16(i)))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    mutating func string(_ s: String) {
        u32(UInt32(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
    mutating func optI64(_ v: Int64?) {
        bool(v != nil)
        if let v { i64(v) }
    }
    mutating func cell(_ c: Cell) { for i in 0..<8 { i64(c[i]) } }
}

struct BinaryReader {
    let bytes: ArraySlice<UInt8>
    var pos: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        pos = bytes.startIndex
    }
    init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    struct Truncated: Error {}

    @inline(__always) mutating func need(_ n: Int) throws {
        guard n >= 0, pos + n <= bytes.endIndex else { throw Truncated() }
    }
    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        try need(n)
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }
    mutating func u8() throws -> UInt8 {
        try need(1)
        defer { pos += 1 }
        return bytes[pos]
    }
    mutating func u16() throws -> UInt16 {
        try need(2)
        defer { pos += 2 }
        return UInt16(bytes[pos]) | UInt16(bytes[pos + 1]) << 8
    }
    mutating func u32() throws -> UInt32 {
        try need(4)
        defer { pos += 4 }
        return UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
    }
    mutating func u64() throws -> UInt64 {
        try need(8)
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(bytes[pos + i]) }
        pos += 8
        return v
    }
    mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    mutating func i32() throws -> Int32 { Int32(bitPattern: try u32()) }
    mutating func bool() throws -> Bool { try u8() != 0 }
    mutating func string() throws -> String {
        let n = Int(try u32())
        return String(decoding: try take(n), as: UTF8.self)
    }
    mutating func optI64() throws -> Int64? { try bool() ? try i64() : nil }
    mutating func cell() throws -> Cell {
        var c = Cell.zero
        for i in 0..<8 { c[i] = try i64() }
        return c
    }
    var atEnd: Bool { pos == bytes.endIndex }
}

struct FormatError: Error { var message: String }

extension BinaryWriter {
    mutating func key(_ k: EventKey) {
        i64(k.time)
        string(k.id)
    }

    mutating func customer(_ c: CustomerState) {
        optI64(c.signedUpAt?.ms)
        bool(c.signedUpKey != nil)
        if let k = c.signedUpKey { key(k) }
        u32(UInt32(c.subscriptions.count))
        for s in c.subscriptions {
            key(s.key)
            switch s.kind {
            case let .started(plan, mrr): u8(0); u8(UInt8(plan.rank)); i64(mrr)
            case let .changed(from, to, plan): u8(1); i64(from); i64(to); u8(UInt8(plan.rank))
            case let .canceled(kind, mrr): u8(2); bool(kind == .involuntary); i64(mrr)
            }
        }
        u32(UInt32(c.invoices.count))
        for (id, inv) in c.invoices.entries {
            string(id)
            let months = inv.attemptMonths.entries
            u32(UInt32(months.count))
            for (m, bits) in months { i32(m); u8(bits) }
            bool(inv.failed)
            bool(inv.firstFailure != nil)
            if let ff = inv.firstFailure { u32(UInt32(ff.attempt)); key(ff.key); u8(UInt8(ff.reason.index)) }
            bool(inv.end != nil)
            if let e = inv.end { key(e.key); bool(e.paid); u32(UInt32(e.attempts)); i64(e.amount) }
        }
        let months = c.months.entries
        u32(UInt32(months.count))
        for (m, f) in months {
            i32(m); u8(f.flags); u8(f.paidPlans); u16(f.reasons); i32(f.featureEvents)
        }
        i64(c.lifetimeRevenue)
        for v in [c.invoicesIssued, c.invoicesPaid, c.invoicesUncollectible, c.paymentsFailed, c.cancelIntents] { i32(v) }
        bool(c.lastFailure != nil)
        if let lf = c.lastFailure { key(lf.key); u8(UInt8(lf.reason.index)) }
        optI64(c.firstCoreUse?.ms)
        optI64(c.lastActive?.ms)
        optI64(c.lastCoreUse?.ms)
        u32(UInt32(c.recentFeatureTimes.count))
        for t in c.recentFeatureTimes { i64(t) }
        u32(UInt32(c.recentFailures.count))
        for f in c.recentFailures { i64(f.time); bool(f.hard) }
        u32(UInt32(c.recentCancelIntents.count))
        for t in c.recentCancelIntents { i64(t) }
        u8(c.announcedSegment.map { UInt8(RiskModel.Segment.allCases.firstIndex(of: $0)! + 1) } ?? 0)
    }
}

extension BinaryReader {
    static let plans: [Plan] = [.free, .standard, .premium, .enterprise]

    mutating func key() throws -> EventKey { EventKey(time: try i64(), id: try string()) }
    mutating func plan() throws -> Plan {
        let i = Int(try u8())
        guard i < Self.plans.count else { throw FormatError(message: "bad plan") }
        return Self.plans[i]
    }
    mutating func reason() throws -> FailureReason {
        let i = Int(try u8())
        guard i < FailureReason.allCases.count else { throw FormatError(message: "bad failure reason") }
        return FailureReason.allCases[i]
    }
    mutating func count() throws -> Int {
        let n = Int(try u32())
        guard n <= bytes.endIndex - pos else { throw Truncated() }
        return n
    }

    mutating func customer() throws -> CustomerState {
        var c = CustomerState()
        c.signedUpAt = try optI64().map { Timestamp(ms: $0) }
        if try bool() { c.signedUpKey = try key() }
        for _ in 0..<(try count()) {
            let k = try key()
            switch try u8() {
            case 0: c.subscriptions.append(SubscriptionEvent(key: k, kind: .started(plan: try plan(), mrr: try i64())))
            case 1:
                let from = try i64(), to = try i64()
                c.subscriptions.append(SubscriptionEvent(key: k, kind: .changed(from: from, to: to, toPlan: try plan())))
            case 2:
                let invol = try bool()
                c.subscriptions.append(SubscriptionEvent(key: k, kind: .canceled(invol ? .involuntary : .voluntary, mrr: try i64())))
            default: throw FormatError(message: "bad subscription kind")
            }
        }
        for _ in 0..<(try count()) {
            let id = try string()
            var inv = InvoiceState()
            for _ in 0..<(try count()) { inv.attemptMonths[try i32()] = try u8() }
            inv.failed = try bool()
            if try bool() { inv.firstFailure = (Int(try u32()), try key(), try reason()) }
            if try bool() { inv.end = (try key(), try bool(), Int(try u32()), try i64()) }
            c.invoices[id] = inv
        }
        for _ in 0..<(try count()) {
            let m = try i32()
            var f = MonthFlags()
            f.flags = try u8(); f.paidPlans = try u8(); f.reasons = try u16(); f.featureEvents = try i32()
            c.months[m] = f
        }
        c.lifetimeRevenue = try i64()
        c.invoicesIssued = try i32(); c.invoicesPaid = try i32(); c.invoicesUncollectible = try i32()
        c.paymentsFailed = try i32(); c.cancelIntents = try i32()
        if try bool() { c.lastFailure = (try key(), try reason()) }
        c.firstCoreUse = try optI64().map { Timestamp(ms: $0) }
        c.lastActive = try optI64().map { Timestamp(ms: $0) }
        c.lastCoreUse = try optI64().map { Timestamp(ms: $0) }
        for _ in 0..<(try count()) { c.recentFeatureTimes.append(try i64()) }
        for _ in 0..<(try count()) { c.recentFailures.append((try i64(), try bool())) }
        for _ in 0..<(try count()) { c.recentCancelIntents.append(try i64()) }
        let segment = Int(try u8())
        guard segment <= RiskModel.Segment.allCases.count else { throw FormatError(message: "bad risk segment") }
        c.announcedSegment = segment == 0 ? nil : RiskModel.Segment.allCases[segment - 1]
        return c
    }
}

/// CRC-32 (IEEE), for detecting torn or corrupted checkpoint records. Slicing-by-8: eight table look-ups per
/// eight bytes instead of one per byte (about four times as fast on a restart's hundreds of megabytes).
public enum CRC32 {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    public static func of(_ bytes: [UInt8]) -> UInt32 { of(bytes[...]) }

    public static func of(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        let t0 = tables[0], t1 = tables[1], t2 = tables[2], t3 = tables[3]
        let t4 = tables[4], t5 = tables[5], t6 = tables[6], t7 = tables[7]
        var crc: UInt32 = 0xFFFF_FFFF
        var i = bytes.startIndex
        let end = bytes.endIndex
        while end - i >= 8 {
            let lo = crc ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
            let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
            crc = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
            i += 8
        }
        while i < end {
            crc = t0[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
            i += 1
        }
        return crc ^ 0xFFFF_FFFF
    }
}

/// Writes `parts` to a temporary file beside `url`, fsyncs it and renames it into place (rename(2) replaces
/// atomically): a crash leaves the old file or the new one, never a mix.
func writeAtomically(_ parts: [[UInt8]], to url: URL) throws {
    let temp = url.appendingPathExtension("tmp")
    FileManager.default.createFile(atPath: temp.path, contents: nil)
    let handle = try FileHandle(forWritingTo: temp)
    for p in parts { try handle.write(contentsOf: p) }
    try handle.synchronize()
    try handle.close()
    guard rename(temp.path, url.path) == 0 else { throw AtomicWriteError(path: url.path, errno: errno) }
}

struct AtomicWriteError: Error, CustomStringConvertible {
    var path: String
    var errno: Int32
    var description: String { "cannot rename a new \(path) into place (errno \(errno))" }
}
