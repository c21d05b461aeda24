import Events

/// One aggregate row's numbers. Every mart cell is a sum of per-customer contributions, so adding and
/// subtracting contributions is all the engine does; SIMD keeps that cheap.
public typealias Cell = SIMD8<Int64>

/// The aggregate marts of one partition: cells keyed by month and a second key (plan, reason, flag).
public struct Aggregates: Sendable, Equatable {
    /// (month, plan rank 0 = all): revenue, first_attempt, recovered, successful, paying.
    public var revenue: [CellKey: Cell] = [:]
    /// (month, plan rank 0 = all): attempts, succeeded, failed, first_attempts, first_attempt_failures,
    /// retries, retry_successes, invoices_attempted.
    public var reliability: [CellKey: Cell] = [:]
    /// (month, reason index): failures, failed_amount, affected_customers.
    public var failureReasons: [CellKey: Cell] = [:]
    /// (month, 0): active, feature_events, core_feature_events, core_active, billed, cancel_intent, billed_cancel_intent.
    public var engagement: [CellKey: Cell] = [:]
    /// (month, 0): new, reactivation, expansion, contraction, churned_voluntary, churned_involuntary.
    public var mrr: [CellKey: Cell] = [:]
    /// (month, had_failure 0/1): customers, cancel_intent, churned, involuntary, engagement_before, engagement_after.
    public var failureToChurn: [CellKey: Cell] = [:]
    /// (signup month, 0): signups, activated, converted, retained_m1, retained_m3.
    public var cohorts: [CellKey: Cell] = [:]
    /// Time-to-value multiset per signup month, in whole seconds: seconds → count.
    public var cohortTtv: [Int32: [Int64: Int]] = [:]
    /// (month, reason index): recovered_invoices, recovered_cents, lost_invoices, lost_cents.
    public var recovery: [CellKey: Cell] = [:]

    public init() {}

    /// Adds another partition's aggregates (customers never span partitions, so sums are exact).
    public mutating func merge(_ other: Aggregates) {
        func add(_ a: inout [CellKey: Cell], _ b: [CellKey: Cell]) { for (k, v) in b { a[k, default: .zero] &+= v } }
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
