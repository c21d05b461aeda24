import Events
import Foundation
import Marts

/// The JSON API's payloads.
public enum DashboardAPI {
    public static func kpis(_ d: DashboardData) -> String {
        func period(_ p: ExecutiveKPIs.Period) -> String {
            func r(_ v: Double?) -> String { v.map { String(format: "%.6f", $0) } ?? "null" }
            return "{\"label\":\(jsonString(p.label)),\"revenue_cents\":\(p.revenueCents),\"paying_customers\":\(p.payingCustomers),"
                + "\"payment_failure_rate\":\(r(p.paymentFailureRate)),\"average_payment_attempts\":\(r(p.averagePaymentAttempts)),"
                + "\"cancel_intent_rate\":\(r(p.cancelIntentRate)),\"net_mrr_churn_rate\":\(r(p.netMrrChurnRate)),\"activation_rate\":\(r(p.activationRate))}"
        }
        let k = d.kpis
        return "{\"as_of\":\(k.asOf.map { "\"\($0)\"" } ?? "null"),\"latest_month\":\(k.latestMonth.map(period) ?? "null"),\"all_time\":\(period(k.allTime)),"
            + "\"zombie_accounts\":\(k.zombieAccounts),\"mrr_at_risk_cents\":\(k.mrrAtRiskCents)}"
    }

    public static func narrative(_ d: DashboardData) -> String {
        let n = Narrative(d)
        let findings = n.findings.map { f in
            "{\"id\":\(jsonString(f.id)),\"title\":\(jsonString(f.title)),\"text\":\(jsonString(f.text)),\"numbers\":{"
                + f.numbers.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\($0.value)" }.joined(separator: ",") + "}}"
        }
        return "{\"insufficient\":\(n.insufficient.map(jsonString) ?? "null"),\"findings\":[\(findings.joined(separator: ","))],"
            + "\"recommendations\":[\(n.recommendations.map(jsonString).joined(separator: ","))]}"
    }

    public static func alerts(_ d: DashboardData) -> String { "[" + d.alerts.map(\.json).joined(separator: ",") + "]" }

    public static func atRisk(_ d: DashboardData, limit: Int) -> String {
        let rows = PageRenderer(data: d).atRiskRows(limit: limit)
        let table = d.table("mart_customer_360")
        return MartTable(name: table.name, columns: table.columns, rows: rows.map { r in table.columns.map { r[$0] ?? .null } }).json
    }

    public static func customer(_ d: DashboardData, id: String) -> String? {
        guard let state = d.snapshot.customers[id] else { return nil }
        let table = d.table("mart_customer_360")
        let row = MartTable(name: table.name, columns: table.columns, rows: table.rows.filter { $0.first == .text(id) }).json
        let timeline = CustomerTimeline.entries(state).map { "{\"time\":\"\($0.time)\",\"what\":\(jsonString($0.text))}" }
        return "{\"customer\":\(row.dropFirst().dropLast()),\"timeline\":[\(timeline.joined(separator: ","))]}"
    }
}
