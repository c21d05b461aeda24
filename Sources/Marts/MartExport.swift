import Events
import Foundation

/// A value in an exported table, formatted as marts.md's export format says.
public enum MartValue: Sendable, Equatable {
    case int(Int64)
    /// A rate or average: 6 digits after the point; nil is null.
    case rate(Double?)
    case text(String)
    case bool(Bool)
    case time(Timestamp?)
    case null

    public var csv: String {
        switch self {
        case let .int(v): String(v)
        case let .rate(v): v.map { String(format: "%.6f", $0) } ?? ""
        case let .text(s): MartValue.quote(s)
        case let .bool(b): b ? "true" : "false"
        case let .time(t): t?.description ?? ""
        case .null: ""
        }
    }

    static func quote(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

public struct MartTable: Sendable, Equatable {
    public var name: String
    public var columns: [String]
    public var rows: [[MartValue]]

    public init(name: String, columns: [String], rows: [[MartValue]]) {
        self.name = name
        self.columns = columns
        self.rows = rows
    }

    public var csv: String {
        var out = columns.joined(separator: ",") + "\n"
        for row in rows { out += row.map(\.csv).joined(separator: ",") + "\n" }
        return out
    }

    public func column(_ name: String) -> Int? { columns.firstIndex(of: name) }
}

/// All partitions' states merged into the marts of marts.md.
public struct MartSnapshot: Sendable {
    public var aggregates = Aggregates()
    /// Every partition's customers, kept packed as the states hold them (built one at a time when read).
    public var customers = CustomerTable()
    public var accepted = 0
    public var duplicates = 0
    public var rejected = 0
    public var minTime: Timestamp?
    public var asOf: Timestamp?

    /// Customers whose sign-up was never seen: they began inside a gap of the input's history (or before it), so
    /// their lifetime columns count only what was seen.
    public var customersWithoutSignup: Int { customers.values.filter { $0.signedUpAt == nil }.count }

    public init() {}

    public init(_ states: [MartState]) {
        for s in states { add(s) }
    }

    public mutating func add(_ s: MartState) {
        aggregates.merge(s.aggregates)
        customers.reserveCapacity(customers.count + s.customers.count)
        for (id, bytes) in s.customers.packedEntries where !customers.contains(id) { customers.setPacked(id, bytes) }
        accepted += s.accepted
        duplicates += s.duplicates
        rejected += s.rejected
        if let t = s.minTime, minTime.map({ t < $0 }) ?? true { minTime = t }
        if let t = s.maxTime, asOf.map({ t > $0 }) ?? true { asOf = t }
    }

    public var months: [Month] {
        guard let lo = minTime?.month, let hi = asOf?.month else { return [] }
        return Array(lo...hi)
    }

    public static let martNames = [
        "mart_revenue_monthly", "mart_payment_reliability", "mart_payment_reliability_plan_monthly",
        "mart_failure_reason_monthly", "mart_engagement", "mart_mrr_movements", "mart_customer_360",
        "mart_failure_to_churn_signal", "mart_activation_cohort", "mart_recovery_opportunity",
    ]

    /// Each mart's grain: the columns that identify a row (its primary key in PostgreSQL).
    public static let grains: [String: [String]] = [
        "mart_revenue_monthly": ["month", "plan"], "mart_payment_reliability": ["month"],
        "mart_payment_reliability_plan_monthly": ["month", "plan"], "mart_failure_reason_monthly": ["month", "failure_reason"],
        "mart_engagement": ["month"], "mart_mrr_movements": ["month"], "mart_customer_360": ["customer_id"],
        "mart_failure_to_churn_signal": ["month", "had_failure"], "mart_activation_cohort": ["signup_month"],
        "mart_recovery_opportunity": ["month", "failure_reason"],
    ]

    public func tables() -> [MartTable] {
        [revenueMonthly(), reliability(), reliabilityByPlan(), failureReasons(), engagement(), mrrMovements(),
         customer360(), failureToChurn(), activationCohorts(), recoveryOpportunity()]
    }

    public func table(_ name: String) -> MartTable? { tables().first { $0.name == name } }

    static func ratio(_ a: Int64, _ b: Int64) -> MartValue { .rate(b == 0 ? nil : Double(a) / Double(b)) }
    static let planNames: [(String, Int32)] = [("all", 0), ("enterprise", 3), ("premium", 2), ("standard", 1)]
    static let paidPlanNames: [(String, Int32)] = [("enterprise", 3), ("premium", 2), ("standard", 1)]

    func cell(_ d: CellMap, _ m: Month, _ sub: Int32 = 0) -> Cell { d[CellKey(m.index, sub)] ?? .zero }

    public func revenueMonthly() -> MartTable {
        var rows: [[MartValue]] = []
        for m in months {
            for (name, rank) in Self.planNames {
                let c = cell(aggregates.revenue, m, rank)
                var growth: MartValue = .rate(nil)
                if m != months.first {
                    let prev = cell(aggregates.revenue, m.previous, rank)[0]
                    if prev != 0 { growth = .rate(Double(c[0] - prev) / Double(prev)) }
                }
                rows.append([.text(m.description), .text(name), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]), .int(c[4]), growth])
            }
        }
        return MartTable(name: "mart_revenue_monthly",
                         columns: ["month", "plan", "revenue_cents", "first_attempt_revenue_cents", "recovered_revenue_cents",
                                   "successful_payments", "paying_customers", "revenue_growth_rate"], rows: rows)
    }

    static let reliabilityColumns = ["attempts", "succeeded", "failed", "failure_rate", "first_attempts", "first_attempt_failures",
                                     "first_attempt_failure_rate", "retries", "retry_successes", "invoices_attempted",
                                     "avg_attempts_per_invoice"]

    static func reliabilityValues(_ c: Cell) -> [MartValue] {
        [.int(c[0]), .int(c[1]), .int(c[2]), ratio(c[2], c[0]), .int(c[3]), .int(c[4]), ratio(c[4], c[3]),
         .int(c[5]), .int(c[6]), .int(c[7]), ratio(c[0], c[7])]
    }

    public func reliability() -> MartTable {
        MartTable(name: "mart_payment_reliability", columns: ["month"] + Self.reliabilityColumns,
                  rows: months.map { [.text($0.description)] + Self.reliabilityValues(cell(aggregates.reliability, $0)) })
    }

    public func reliabilityByPlan() -> MartTable {
        var rows: [[MartValue]] = []
        for m in months {
            for (name, rank) in Self.paidPlanNames {
                rows.append([.text(m.description), .text(name)] + Self.reliabilityValues(cell(aggregates.reliability, m, rank)))
            }
        }
        return MartTable(name: "mart_payment_reliability_plan_monthly", columns: ["month", "plan"] + Self.reliabilityColumns, rows: rows)
    }

    public func failureReasons() -> MartTable {
        var rows: [[MartValue]] = []
        let reasons = FailureReason.allCases.sorted { $0.rawValue < $1.rawValue }
        for m in months {
            let total = reasons.reduce(Int64(0)) { $0 + cell(aggregates.failureReasons, m, Int32($1.index))[0] }
            for r in reasons {
                let c = cell(aggregates.failureReasons, m, Int32(r.index))
                guard c[0] > 0 else { continue }
                rows.append([.text(m.description), .text(r.rawValue), .text(r.declineType.rawValue), .int(c[0]), .int(c[1]), .int(c[2]),
                             Self.ratio(c[0], total)])
            }
        }
        return MartTable(name: "mart_failure_reason_monthly",
                         columns: ["month", "failure_reason", "decline_type", "failures", "failed_amount_cents", "affected_customers",
                                   "share_of_failures"], rows: rows)
    }

    public func engagement() -> MartTable {
        MartTable(name: "mart_engagement",
                  columns: ["month", "active_customers", "feature_events", "core_feature_events", "core_active_customers",
                            "events_per_active_customer", "billed_customers", "cancel_intent_customers",
                            "billed_cancel_intent_customers", "cancel_intent_rate"],
                  rows: months.map { m in
                      let c = cell(aggregates.engagement, m)
                      return [.text(m.description), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]), Self.ratio(c[1], c[0]),
                              .int(c[4]), .int(c[5]), .int(c[6]), Self.ratio(c[6], c[4])]
                  })
    }

    public func mrrMovements() -> MartTable {
        var starting: Int64 = 0
        var rows: [[MartValue]] = []
        for m in months {
            let c = cell(aggregates.mrr, m)
            let ending = starting + c[0] + c[1] + c[2] - c[3] - c[4] - c[5]
            let net = c[4] + c[5] + c[3] - c[2]
            rows.append([.text(m.description), .int(starting), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]), .int(c[4]), .int(c[5]),
                         .int(ending), .rate(starting == 0 ? nil : Double(net) / Double(starting))])
            starting = ending
        }
        return MartTable(name: "mart_mrr_movements",
                         columns: ["month", "starting_mrr_cents", "new_mrr_cents", "reactivation_mrr_cents", "expansion_mrr_cents",
                                   "contraction_mrr_cents", "churned_voluntary_mrr_cents", "churned_involuntary_mrr_cents",
                                   "ending_mrr_cents", "net_mrr_churn_rate"], rows: rows)
    }

    public static let customer360Columns = [
        "customer_id", "signed_up_at", "plan", "status", "mrr_cents", "lifetime_revenue_cents", "invoices_issued", "invoices_paid",
        "invoices_uncollectible", "payments_failed", "last_failure_reason", "last_failure_at", "first_core_use_at", "activated",
        "ttv_seconds", "last_active_at", "feature_events_30d", "cancel_intents", "is_zombie", "risk_score", "risk_segment", "risk_reasons",
    ]

    public func customer360() -> MartTable {
        let asOf = self.asOf ?? Timestamp(ms: 0)
        let ids = customers.keys.sorted()  // ids are ASCII (events.md), so this is byte order
        let rows: [[MartValue]] = ids.map { id in Self.customer360Row(id, customers[id]!, asOf: asOf) }
        return MartTable(name: "mart_customer_360", columns: Self.customer360Columns, rows: rows)
    }

    /// One customer's row of mart_customer_360 at `asOf` (the marts' as-of: the latest event time of all).
    public static func customer360Row(_ id: String, _ c: borrowing CustomerState, asOf: Timestamp) -> [MartValue] {
        let risk = RiskModel.assess(c, asOf: asOf)
        let ttv = c.ttvMilliseconds
        return [.text(id), .time(c.signedUpAt), .text(c.currentPlan.rawValue), .text(c.status.rawValue), .int(c.currentMrr),
                .int(c.lifetimeRevenue), .int(Int64(c.invoicesIssued)), .int(Int64(c.invoicesPaid)), .int(Int64(c.invoicesUncollectible)),
                .int(Int64(c.paymentsFailed)), c.lastFailure.map { .text($0.reason.rawValue) } ?? .null,
                .time(c.lastFailure.map { Timestamp(ms: $0.key.time) }), .time(c.firstCoreUse), .bool(ttv != nil),
                ttv.map { .int($0 / 1000) } ?? .null, .time(c.lastActive), .int(Int64(c.featureEvents30d(asOf: asOf))),
                .int(Int64(c.cancelIntents)), .bool(c.isZombie(asOf: asOf)), .int(Int64(risk.score)), .text(risk.segment.rawValue),
                .text(risk.reasons.joined(separator: ";"))]
    }

    /// The earliest as-of after `asOf` at which the customer's row may differ with no new event (a feature use
    /// leaving the 30-day window, the risk model's time-driven signals); nil when time alone never changes it.
    /// A row computed at `asOf` is the row at any later as-of before that moment.
    public static func customer360NextChange(_ c: borrowing CustomerState, asOf: Timestamp) -> Int64? {
        let day = Timestamp.millisecondsPerDay
        var next = RiskModel.nextChange(c, asOf: asOf) ?? Int64.max
        for t in c.recentFeatureTimes where t + 30 * day > asOf.ms && t + 30 * day < next { next = t + 30 * day }
        // Without any activity, days since active count from the sign-up.
        if c.lastActive == nil, let s = c.signedUpAt, s.ms + 14 * day > asOf.ms, s.ms + 14 * day < next { next = s.ms + 14 * day }
        return next == Int64.max ? nil : next
    }

    public func failureToChurn() -> MartTable {
        var rows: [[MartValue]] = []
        let cohortMonths = Set(aggregates.failureToChurn.keys.map(\.month)).sorted()
        for mi in cohortMonths {
            let m = Month(index: mi)
            let groups = [cell(aggregates.failureToChurn, m, 0), cell(aggregates.failureToChurn, m, 1)]
            guard groups[0][0] + groups[1][0] > 0 else { continue }
            for (flag, c) in [(false, groups[0]), (true, groups[1])] {
                rows.append([.text(m.description), .bool(flag), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]),
                             Self.ratio(c[1], c[0]), Self.ratio(c[2], c[0]), Self.ratio(c[4], c[0]), Self.ratio(c[5], c[0])])
            }
        }
        return MartTable(name: "mart_failure_to_churn_signal",
                         columns: ["month", "had_failure", "customers", "cancel_intent_customers", "churned_customers",
                                   "involuntary_churned_customers", "cancel_intent_rate", "churn_rate", "engagement_before",
                                   "engagement_after"], rows: rows)
    }

    public func activationCohorts() -> MartTable {
        let last = asOf?.month
        var rows: [[MartValue]] = []
        for key in aggregates.cohorts.keys.sorted() {
            let c = aggregates.cohorts[key]!
            guard c[0] > 0 else { continue }
            let m = Month(index: key.month)
            var median: MartValue = .null
            if let ttv = aggregates.cohortTtv[key.month] {
                let sorted = ttv.filter { $0.value > 0 }.sorted { $0.key < $1.key }
                let n = sorted.reduce(0) { $0 + $1.value }
                if n > 0 {
                    var target = (n - 1) / 2, acc = 0
                    for (v, k) in sorted {
                        acc += k
                        if acc > target { median = .int(v); break }
                    }
                    target = 0
                }
            }
            let r1: MartValue = last.map { m.advanced(by: 1) > $0 } == true ? .null : .int(c[3])
            let r3: MartValue = last.map { m.advanced(by: 3) > $0 } == true ? .null : .int(c[4])
            rows.append([.text(m.description), .int(c[0]), .int(c[1]), Self.ratio(c[1], c[0]), median, .int(c[2]),
                         Self.ratio(c[2], c[0]), r1, r3])
        }
        return MartTable(name: "mart_activation_cohort",
                         columns: ["signup_month", "signups", "activated", "activation_rate", "median_ttv_seconds", "converted",
                                   "paid_conversion_rate", "retained_m1", "retained_m3"], rows: rows)
    }

    public func recoveryOpportunity() -> MartTable {
        var rows: [[MartValue]] = []
        let reasons = FailureReason.allCases.sorted { $0.rawValue < $1.rawValue }
        for mi in Set(aggregates.recovery.keys.map(\.month)).sorted() {
            for r in reasons {
                guard let c = aggregates.recovery[CellKey(mi, Int32(r.index))], c[0] + c[2] > 0 else { continue }
                rows.append([.text(Month(index: mi).description), .text(r.rawValue), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]),
                             Self.ratio(c[0], c[0] + c[2])])
            }
        }
        return MartTable(name: "mart_recovery_opportunity",
                         columns: ["month", "failure_reason", "recovered_invoices", "recovered_cents", "lost_invoices", "lost_cents",
                                   "recovery_rate"], rows: rows)
    }
}
