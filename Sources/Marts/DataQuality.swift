import Events

/// The data-quality rules of docs/marts.md, checked on a merged snapshot of the marts.
public enum DataQuality {
    public struct Violation: Sendable, CustomStringConvertible {
        public var mart: String
        public var rule: String
        public var example: String
        public var description: String { "\(mart): \(rule) — e.g. \(example)" }
    }

    static var grains: [String: [String]] { MartSnapshot.grains }
    /// Columns allowed outside [0, 1] / below 0.
    static let signed: Set<String> = ["revenue_growth_rate", "net_mrr_churn_rate"]
    static let unboundedRatios: Set<String> = ["avg_attempts_per_invoice", "events_per_active_customer", "engagement_before", "engagement_after"]

    public static func check(_ snapshot: MartSnapshot) -> [Violation] {
        var out: [Violation] = []
        let tables = snapshot.tables()
        func row(_ t: MartTable, _ r: [MartValue]) -> String {
            zip(t.columns, r).map { "\($0)=\($1.csv)" }.joined(separator: " ")
        }
        for t in tables {
            let grain = grains[t.name] ?? []
            var seen = Set<[String]>()
            for r in t.rows {
                let key = grain.compactMap { t.column($0) }.map { r[$0].csv }
                if key.contains("") { out.append(Violation(mart: t.name, rule: "grain columns not null", example: row(t, r))) }
                if !seen.insert(key).inserted { out.append(Violation(mart: t.name, rule: "grain unique", example: row(t, r))) }
                for (i, c) in t.columns.enumerated() where !signed.contains(c) {
                    switch r[i] {
                    case let .int(v) where v < 0: out.append(Violation(mart: t.name, rule: "\(c) ≥ 0", example: row(t, r)))
                    case let .rate(v?) where v < 0 || (!unboundedRatios.contains(c) && v > 1):
                        out.append(Violation(mart: t.name, rule: "\(c) in [0, 1]", example: row(t, r)))
                    default: break
                    }
                }
            }
        }
        func int(_ t: MartTable, _ r: [MartValue], _ c: String) -> Int64 { if case let .int(v) = r[t.column(c)!] { v } else { 0 } }
        for name in ["mart_payment_reliability", "mart_payment_reliability_plan_monthly"] {
            let t = tables.first { $0.name == name }!
            for r in t.rows where int(t, r, "succeeded") + int(t, r, "failed") != int(t, r, "attempts") {
                out.append(Violation(mart: name, rule: "succeeded + failed = attempts", example: row(t, r)))
            }
        }
        let mrr = tables.first { $0.name == "mart_mrr_movements" }!
        var previousEnding: Int64 = 0
        for r in mrr.rows {
            let ending = int(mrr, r, "starting_mrr_cents") + int(mrr, r, "new_mrr_cents") + int(mrr, r, "reactivation_mrr_cents")
                + int(mrr, r, "expansion_mrr_cents") - int(mrr, r, "contraction_mrr_cents") - int(mrr, r, "churned_voluntary_mrr_cents")
                - int(mrr, r, "churned_involuntary_mrr_cents")
            if ending != int(mrr, r, "ending_mrr_cents") { out.append(Violation(mart: mrr.name, rule: "ending = starting + movements", example: row(mrr, r))) }
            if int(mrr, r, "starting_mrr_cents") != previousEnding {
                out.append(Violation(mart: mrr.name, rule: "starting = previous month's ending", example: row(mrr, r)))
            }
            previousEnding = int(mrr, r, "ending_mrr_cents")
        }
        let c360 = tables.first { $0.name == "mart_customer_360" }!
        let revenue = tables.first { $0.name == "mart_revenue_monthly" }!
        let fails = tables.first { $0.name == "mart_failure_reason_monthly" }!
        let lifetime = c360.rows.reduce(Int64(0)) { $0 + int(c360, $1, "lifetime_revenue_cents") }
        let total = revenue.rows.filter { $0[1] == .text("all") }.reduce(Int64(0)) { $0 + int(revenue, $1, "revenue_cents") }
        if lifetime != total {
            out.append(Violation(mart: c360.name, rule: "sum of lifetime_revenue_cents = sum of revenue_cents (plan all)", example: "\(lifetime) ≠ \(total)"))
        }
        let failed = c360.rows.reduce(Int64(0)) { $0 + int(c360, $1, "payments_failed") }
        let failures = fails.rows.reduce(Int64(0)) { $0 + int(fails, $1, "failures") }
        if failed != failures {
            out.append(Violation(mart: c360.name, rule: "sum of payments_failed = sum of failures in mart_failure_reason_monthly", example: "\(failed) ≠ \(failures)"))
        }
        return out
    }
}
