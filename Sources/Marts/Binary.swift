import Events

/// Little-endian binary writing: checkpoint records, and the packed form of customers kept in memory.
public struct BinaryWriter {
    public var bytes: [UInt8] = []

    public init() {}

    /// Little-endian, byte by byte into room added for them at once (no unsafe pointers).
    @inline(__always) mutating func fixed<T: FixedWidthInteger>(_ v: T) {
        bytes.append(addingCapacity: MemoryLayout<T>.size) { o in
            for k in 0..<MemoryLayout<T>.size { o.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
        }
    }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { fixed(v) }
    public mutating func u32(_ v: UInt32) { fixed(v) }
    public mutating func u64(_ v: UInt64) { fixed(v) }
    public mutating func i64(_ v: Int64) { fixed(v) }
    public mutating func i32(_ v: Int32) { fixed(v) }
    public mutating func bool(_ v: Bool) { u8(v ? 1 : 0) }
    public mutating func string(_ s: String) {
        u32(UInt32(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }
    public mutating func optI64(_ v: Int64?) {
        bool(v != nil)
        if let v { i64(v) }
    }
}

/// Little-endian binary reading; every read is bounds-checked and throws on truncation.
public struct BinaryReader {
    public let bytes: ArraySlice<UInt8>
    public var pos: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        pos = bytes.startIndex
    }
    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    public struct Truncated: Error {}

    @inline(__always) mutating func need(_ n: Int) throws {
        guard n >= 0, n <= bytes.endIndex - pos else { throw Truncated() }
    }
    @inline(__always) mutating func fixed<T: FixedWidthInteger & BitwiseCopyable>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        // One bounds-checked load from the bytes' span (no unsafe pointers).
        let v = bytes.span.bytes.unsafeLoadUnaligned(fromByteOffset: pos - bytes.startIndex, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }
    public mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        try need(n)
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }
    public mutating func skip(_ n: Int) throws {
        try need(n)
        pos += n
    }
    public mutating func u8() throws -> UInt8 {
        try need(1)
        defer { pos += 1 }
        return bytes[pos]
    }
    public mutating func u16() throws -> UInt16 { try fixed(UInt16.self) }
    public mutating func u32() throws -> UInt32 { try fixed(UInt32.self) }
    public mutating func u64() throws -> UInt64 { try fixed(UInt64.self) }
    public mutating func i64() throws -> Int64 { try fixed(Int64.self) }
    public mutating func i32() throws -> Int32 { try fixed(Int32.self) }
    public mutating func bool() throws -> Bool { try u8() != 0 }
    public mutating func string() throws -> String {
        let n = Int(try u32())
        return String(decoding: try take(n), as: UTF8.self)
    }
    public mutating func optI64() throws -> Int64? { try bool() ? try i64() : nil }
    /// A count of items that each take at least one byte: larger than what is left means a damaged record.
    public mutating func count() throws -> Int {
        let n = Int(try u32())
        guard n <= bytes.endIndex - pos else { throw Truncated() }
        return n
    }
    public var atEnd: Bool { pos == bytes.endIndex }
}

public struct FormatError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

// MARK: The packed form of a customer

extension BinaryWriter {
    public mutating func key(_ k: EventKey) {
        i64(k.time)
        string(k.id)
    }

    public mutating func customer(_ c: CustomerState) {
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
    /// The widest span of months a customer's table may cover (event times are limited to the years 2000-2099).
    static let maxMonthSpan = 12 * 100

    public mutating func key() throws -> EventKey { EventKey(time: try i64(), id: try string()) }
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

    public mutating func customer() throws -> CustomerState {
        var c = CustomerState()
        c.signedUpAt = try optI64().map { Timestamp(ms: $0) }
        if try bool() { c.signedUpKey = try key() }
        let subscriptions = try count()
        c.subscriptions.reserveCapacity(subscriptions)
        for _ in 0..<subscriptions {
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
        let invoices = try count()
        c.invoices.reserveCapacity(invoices)
        for _ in 0..<invoices {
            let id = try string()
            var inv = InvoiceState()
            for _ in 0..<(try count()) { inv.attemptMonths[try i32()] = try u8() }
            inv.failed = try bool()
            if try bool() { inv.firstFailure = (Int(try u32()), try key(), try reason()) }
            if try bool() { inv.end = (try key(), try bool(), Int(try u32()), try i64()) }
            c.invoices.append(id, inv)
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

extension BinaryReader {
    mutating func skipKey() throws {
        try skip(8)
        try skip(Int(try u32()))
    }

    /// Walks one packed customer without building it, with the checks `customer()` makes: how a loaded
    /// checkpoint's customers are checked without the cost of building them.
    mutating func skipCustomer() throws {
        if try bool() { try skip(8) }
        if try bool() { try skipKey() }
        for _ in 0..<(try count()) {
            try skipKey()
            switch try u8() {
            case 0: _ = try plan(); try skip(8)
            case 1: try skip(16); _ = try plan()
            case 2: try skip(9)
            default: throw FormatError(message: "bad subscription kind")
            }
        }
        for _ in 0..<(try count()) {
            try skip(Int(try u32()))
            try skip(5 * (try count()))
            try skip(1)
            if try bool() { try skip(4); try skipKey(); _ = try reason() }
            if try bool() { try skipKey(); try skip(13) }
        }
        var previous: Int32?
        for _ in 0..<(try count()) {
            // Written in order; a damaged month far from the others would make the month table enormous.
            let m = try i32()
            if let p = previous, m <= p || Int(m) - Int(p) > Self.maxMonthSpan {
                throw FormatError(message: "months out of order")
            }
            previous = m
            try skip(8)
        }
        try skip(28)
        if try bool() { try skipKey(); _ = try reason() }
        for _ in 0..<3 where try bool() { try skip(8) }
        try skip(8 * (try count()))
        try skip(9 * (try count()))
        try skip(8 * (try count()))
        guard Int(try u8()) <= RiskModel.Segment.allCases.count else { throw FormatError(message: "bad risk segment") }
    }
}

/// A customer's state packed into bytes (the layout of `BinaryWriter.customer`): how customers not in use
/// are kept in memory and in checkpoints.
public enum CustomerCodec {
    public static func encode(_ c: CustomerState) -> [UInt8] {
        var w = BinaryWriter()
        w.bytes.reserveCapacity(256)
        w.customer(c)
        return w.bytes
    }

    /// Decodes bytes that `validate` accepted (or that `encode` wrote).
    public static func decode(_ bytes: [UInt8]) -> CustomerState {
        var r = BinaryReader(bytes)
        do { return try r.customer() } catch { preconditionFailure("a packed customer that was validated does not decode: \(error)") }
    }

    /// Whether `bytes` are exactly one well-formed packed customer (checked when a checkpoint is loaded, so
    /// that damage is reported there, not when the customer is next used).
    public static func validate(_ bytes: ArraySlice<UInt8>) throws {
        var r = BinaryReader(bytes)
        try r.skipCustomer()
        guard r.atEnd else { throw FormatError(message: "trailing bytes after a customer") }
    }
}
