import Events
import Foundation

/// marts.md's executive KPIs, derived from the marts: for the latest complete month and for all time.
public struct ExecutiveKPIs: Sendable {
    public struct Period: Sendable {
        public var label: String
        public var revenueCents: Int64
        public var payingCustomers: Int64
        public var paymentFailureRate: Double?
        public var averagePaymentAttempts: Double?
        public var cancelIntentRate: Double?
        public var netMrrChurnRate: Double?
        public var activationRate: Double?
    }

    public var latestMonth: Period?
    public var allTime: Period
    public var zombieAccounts: Int
    public var mrrAtRiskCents: Int64
    public var asOf: Timestamp?

    public init(_ s: MartSnapshot) {
        asOf = s.asOf
        let months = s.months
        let a = s.aggregates
        func period(_ label: String, _ ms: [Month]) -> Period {
            var rev = Cell.zero, rel = Cell.zero, eng = Cell.zero, mrr = Cell.zero, coh = Cell.zero
            for m in ms {
                rev &+= a.revenue[CellKey(m.index, 0)] ?? .zero
                rel &+= a.reliability[CellKey(m.index, 0)] ?? .zero
                eng &+= a.engagement[CellKey(m.index, 0)] ?? .zero
                mrr &+= a.mrr[CellKey(m.index, 0)] ?? .zero
                coh &+= a.cohorts[CellKey(m.index, 0)] ?? .zero
            }
            // Paying customers: distinct per month; over all time, customers with any revenue.
            let paying = ms.count == 1 ? rev[4] : Int64(s.customers.values.filter { $0.lifetimeRevenue > 0 }.count)
            // Net MRR churn over the period against the MRR at its start.
            let table = s.mrrMovements()
            var starting: Int64 = 0
            if let first = ms.first, let row = table.rows.first(where: { $0[0] == .text(first.description) }), case let .int(v) = row[1] {
                starting = v
            }
            let lost = mrr[3] + mrr[4] + mrr[5] - mrr[2]
            func ratio(_ x: Int64, _ y: Int64) -> Double? { y == 0 ? nil : Double(x) / Double(y) }
            return Period(label: label, revenueCents: rev[0], payingCustomers: paying, paymentFailureRate: ratio(rel[2], rel[0]),
                          averagePaymentAttempts: ratio(rel[0], rel[7]), cancelIntentRate: ratio(eng[6], eng[4]),
                          netMrrChurnRate: ratio(lost, starting), activationRate: ratio(coh[1], coh[0]))
        }
        if months.count >= 2 {
            let m = months[months.count - 2]
            latestMonth = period(m.description, [m])
        }
        allTime = period("all time", months)
        let asOf = s.asOf ?? Timestamp(ms: 0)
        var zombies = 0
        var atRisk: Int64 = 0
        for c in s.customers.values {
            if c.isZombie(asOf: asOf) { zombies += 1 }
            let seg = RiskModel.assess(c, asOf: asOf).segment
            if seg == .high || seg == .critical { atRisk += c.currentMrr }
        }
        zombieAccounts = zombies
        mrrAtRiskCents = atRisk
    }

    public var text: String {
        func money(_ c: Int64) -> String {
            let d = Double(c) / 100
            return d >= 1_000_000 ? String(format: "$%.2fM", d / 1_000_000) : d >= 1000 ? String(format: "$%.1fk", d / 1000) : String(format: "$%.2f", d)
        }
        func pct(_ r: Double?) -> String { r.map { String(format: "%.1f%%", $0 * 100) } ?? "n/a" }
        func num(_ r: Double?) -> String { r.map { String(format: "%.2f", $0) } ?? "n/a" }
        var lines = ["Executive KPIs (as of \(asOf?.description ?? "-"))"]
        func row(_ name: String, _ f: (Period) -> String) {
            lines.append(name.padding(26) + " " + (latestMonth.map(f) ?? "n/a").leftPadding(16) + " " + f(allTime).leftPadding(16))
        }
        lines.append("".padding(26) + " " + (latestMonth?.label ?? "latest month").leftPadding(16) + " " + "all time".leftPadding(16))
        row("total revenue") { money($0.revenueCents) }
        row("paying customers") { String($0.payingCustomers) }
        row("payment failure rate") { pct($0.paymentFailureRate) }
        row("average payment attempts") { num($0.averagePaymentAttempts) }
        row("cancel intent rate") { pct($0.cancelIntentRate) }
        row("net MRR churn") { pct($0.netMrrChurnRate) }
        row("activation rate") { pct($0.activationRate) }
        lines.append("zombie accounts".padding(26) + " " + String(zombieAccounts).leftPadding(33))
        lines.append("MRR at risk (high+critical)".padding(26) + " " + money(mrrAtRiskCents).leftPadding(33))
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
    func leftPadding(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
