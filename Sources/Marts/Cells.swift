import Events

/// One aggregate row's numbers. Every mart cell is a sum of per-customer contributions, so adding and
/// subtracting contributions is all the engine does; SIMD keeps that cheap.
public typealias Cell = SIMD8<Int64>

/// The aggregate marts of one partition: cells keyed by month and a second key (plan, reason, flag).
public struct Aggregates: Sendable, Equatable {
    /// (month, plan rank 0 = all): revenue, first_attempt, recovered, successful, paying.
    public var revenue: CellMap = CellMap()
    /// (month, plan rank 0 = all): attempts, succeeded, failed, first_attempts, first_attempt_failures,
    /// retries, retry_successes, invoices_attempted.
    public var reliability: CellMap = CellMap()
    /// (month, reason index): failures, failed_amount, affected_customers.
    public var failureReasons: CellMap = CellMap()
    /// (month, 0): active, feature_events, core_feature_events, core_active, billed, cancel_intent, billed_cancel_intent.
    public var engagement: CellMap = CellMap()
    /// (month, 0): new, reactivation, expansion, contraction, churned_voluntary, churned_involuntary.
    public var mrr: CellMap = CellMap()
    /// (month, had_failure 0/1): customers, cancel_intent, churned, involuntary, engagement_before, engagement_after.
    public var failureToChurn: CellMap = CellMap()
    /// (signup month, 0): signups, activated, converted, retained_m1, retained_m3.
    public var cohorts: CellMap = CellMap()
    /// Time-to-value multiset per signup month, in whole seconds: seconds → count.
    public var cohortTtv: [Int32: [Int64: Int]] = [:]
    /// (month, reason index): recovered_invoices, recovered_cents, lost_invoices, lost_cents.
    public var recovery: CellMap = CellMap()

    public init() {}

    /// Adds another partition's aggregates (customers never span partitions, so sums are exact).
    public mutating func merge(_ other: Aggregates) {
        func add(_ a: inout CellMap, _ b: CellMap) { for (k, v) in b { a[k, default: .zero] &+= v } }
        add(&revenue, other.revenue)
        add(&reliability, other.reliability)
        add(&failureReasons, other.failureReasons)
        add(&engagement, other.engagement)
        add(&mrr, other.mrr)
        add(&failureToChurn, other.failureToChurn)
        add(&cohorts, other.cohorts)
        add(&recovery, other.recovery)
        for (m, ttv) in other.cohortTtv {
            for (s, n) in ttv { cohortTtv[m, default: [:]][s, default: 0] += n }
        }
    }
}

public struct CellKey: Hashable, Sendable, Comparable {
    public var month: Int32
    public var sub: Int32
    public init(_ month: Int32, _ sub: Int32) {
        self.month = month
        self.sub = sub
    }
    public static func < (a: CellKey, b: CellKey) -> Bool { (a.month, a.sub) < (b.month, b.sub) }
}

@inline(__always) func unit(_ i: Int, _ v: Int64 = 1) -> Cell {
    var c = Cell.zero
    c[i] = v
    return c
}

/// Cells by key: a dictionary from `CellKey` to `Cell` with a multiplicative hash instead of SipHash (the
/// keys are ours, not an attacker's, and every event updates a few cells). Entries stay in insertion order
/// behind an open-addressing index; a key, once added, stays (like `Dictionary` with `default:` updates).
public struct CellMap: Sendable, Sequence {
    public typealias Element = (key: CellKey, value: Cell)
    /// Entry number by slot, -1 when free; the slot count is a power of two, at most half used.
    private var index: [Int32] = []
    public private(set) var keys: [CellKey] = []
    public private(set) var values: [Cell] = []

    public init() {}

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    @inline(__always) private static func slot(_ k: CellKey, _ mask: Int) -> Int {
        let x = (UInt64(UInt32(bitPattern: k.month)) << 32 | UInt64(UInt32(bitPattern: k.sub))) &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: x >> 32) & mask
    }

    /// The entry of `key`, or where its slot would go.
    @inline(__always) private func find(_ key: CellKey) -> (entry: Int?, slot: Int) {
        guard !index.isEmpty else { return (nil, -1) }
        let mask = index.count - 1
        var s = Self.slot(key, mask)
        while true {
            let e = Int(index[s])
            if e < 0 { return (nil, s) }
            if keys[e] == key { return (e, s) }
            s = (s + 1) & mask
        }
    }

    private mutating func insert(_ key: CellKey, _ value: Cell) -> Int {
        if (keys.count + 1) * 2 > index.count { rebuildIndex(Swift.max(16, index.count * 2)) }
        let (_, s) = find(key)
        index[s] = Int32(keys.count)
        keys.append(key)
        values.append(value)
        return keys.count - 1
    }

    private mutating func rebuildIndex(_ size: Int) {
        index = Array(repeating: -1, count: size)
        let mask = size - 1
        for (e, k) in keys.enumerated() {
            var s = Self.slot(k, mask)
            while index[s] >= 0 { s = (s + 1) & mask }
            index[s] = Int32(e)
        }
    }

    /// The cell of `key`, if it was ever added. (To set one, use the `default:` form: cells are never removed.)
    public subscript(key: CellKey) -> Cell? {
        find(key).entry.map { values[$0] }
    }

    public subscript(key: CellKey, default defaultValue: @autoclosure () -> Cell) -> Cell {
        get { find(key).entry.map { values[$0] } ?? defaultValue() }
        _modify {
            let e = find(key).entry ?? insert(key, defaultValue())
            yield &values[e]
        }
    }

    public struct Iterator: IteratorProtocol {
        fileprivate let keys: [CellKey]
        fileprivate let values: [Cell]
        fileprivate var i = 0
        public mutating func next() -> Element? {
            guard i < keys.count else { return nil }
            defer { i += 1 }
            return (keys[i], values[i])
        }
    }

    public func makeIterator() -> Iterator { Iterator(keys: keys, values: values) }
}

extension CellMap: Equatable {
    /// The same keys with the same cells, whatever the order they were added in.
    public static func == (a: CellMap, b: CellMap) -> Bool {
        a.count == b.count && zip(a.keys, a.values).allSatisfy { b[$0.0] == $0.1 }
    }
}

extension Aggregates {
    /// The binary form checkpoints and the PostgreSQL sink store: each cell map sorted by key, then the
    /// time-to-value multisets.
    public func encode(into w: inout BinaryWriter) {
        for d in [revenue, reliability, failureReasons, engagement, mrr, failureToChurn, cohorts, recovery] {
            w.u32(UInt32(d.count))
            for (k, v) in d.sorted(by: { $0.key < $1.key }) {
                w.i32(k.month); w.i32(k.sub)
                for i in 0..<8 { w.i64(v[i]) }
            }
        }
        w.u32(UInt32(cohortTtv.count))
        for (m, ttv) in cohortTtv.sorted(by: { $0.key < $1.key }) {
            w.i32(m)
            w.u32(UInt32(ttv.count))
            for (s, n) in ttv.sorted(by: { $0.key < $1.key }) { w.i64(s); w.i64(Int64(n)) }
        }
    }

    /// Reads what `encode(into:)` wrote.
    public init(from r: inout BinaryReader) throws {
        func cells() throws -> CellMap {
            var d = CellMap()
            for _ in 0..<(try r.count()) {
                let key = CellKey(try r.i32(), try r.i32())
                var c = Cell.zero
                for i in 0..<8 { c[i] = try r.i64() }
                d[key, default: .zero] = c
            }
            return d
        }
        self.init()
        revenue = try cells(); reliability = try cells(); failureReasons = try cells(); engagement = try cells()
        mrr = try cells(); failureToChurn = try cells(); cohorts = try cells(); recovery = try cells()
        for _ in 0..<(try r.count()) {
            let m = try r.i32()
            var ttv: [Int64: Int] = [:]
            for _ in 0..<(try r.count()) { ttv[try r.i64()] = Int(try r.i64()) }
            cohortTtv[m] = ttv
        }
    }
}
