import Events
import Foundation
import Marts

/// The report as Markdown: the KPIs, the narrative and the monthly tables behind them, and what the marts have not
/// seen (a partial history) or the detector cannot catch (its reach at this volume), as the HTML report says them.
public enum MarkdownReport {
    public static func render(_ d: DashboardData, alerting: AlertCoverage = .unknown) -> String {
        var out = "# Undercurrent report\n\nAs of \(d.asOf?.description ?? "-"), \(d.snapshot.accepted) events.\n\n"
        if !d.historyGaps.isEmpty {
            out += "> **\(DashboardData.partialHistoryHeadline)**\n" + d.historyGaps.map { "> - \($0)\n" }.joined()
                + "> \(DashboardData.partialHistoryConsequence).\n\n"
        }
        out += "```\n\(d.kpis.text)\n```\n\n"
        out += Narrative(d, reach: alerting.reach).markdown + "\n"
        func md(_ t: MartTable, _ columns: [String], last: Int = 12, filter: ([String: MartValue]) -> Bool = { _ in true }) -> String {
            let recs = t.records.filter(filter).suffix(last)
            var s = "| " + columns.joined(separator: " | ") + " |\n|" + columns.map { _ in " --- |" }.joined() + "\n"
            for r in recs {
                s += "| " + columns.map { c in (r[c]?.csv ?? "").replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }.joined(separator: " | ") + " |\n"
            }
            return s + "\n"
        }
        out += "## Revenue (all plans), last 12 months\n\n" + md(d.table("mart_revenue_monthly"),
            ["month", "revenue_cents", "first_attempt_revenue_cents", "recovered_revenue_cents", "paying_customers", "revenue_growth_rate"]) { $0["plan"]?.text == "all" }
        out += "## Payment reliability, last 12 months\n\n" + md(d.table("mart_payment_reliability"),
            ["month", "attempts", "failed", "failure_rate", "first_attempt_failure_rate", "avg_attempts_per_invoice"])
        out += "## MRR movements, last 12 months\n\n" + md(d.table("mart_mrr_movements"),
            ["month", "starting_mrr_cents", "new_mrr_cents", "expansion_mrr_cents", "contraction_mrr_cents", "churned_voluntary_mrr_cents", "churned_involuntary_mrr_cents", "ending_mrr_cents", "net_mrr_churn_rate"])
        let atRisk = PageRenderer(data: d).atRiskRows(limit: 20)
        out += "## At-risk accounts (top 20 by MRR)\n\n"
        out += md(MartTable(name: "at_risk", columns: d.table("mart_customer_360").columns,
                            rows: atRisk.map { r in d.table("mart_customer_360").columns.map { r[$0] ?? .null } }),
                  ["customer_id", "risk_segment", "risk_score", "mrr_cents", "plan", "status", "risk_reasons"], last: 20)
        out += "## Alerts\n\n" + (d.alerts.isEmpty ? "None raised.\n" : d.alerts.map { a in
            var line = "- \(a.state.rawValue) \(a.rule) [\(a.scope)] at \(a.at): observed \(Format.percent(a.observedRate)), baseline "
                + "\(Format.percent(a.baselineRate)), \(a.attempts) attempts / \(a.failures) failures"
            if let start = a.shiftStart { line += ", shift began \(start)" }
            if let other = a.resolvedWith {
                line += ", resolved with [\(other)]"
            } else if let e = a.evidence {
                line += String(format: ", evidence 10^%.1f", e / log(10))
            }
            return line
        }.joined(separator: "\n") + "\n")
        out += "\n### What the detector can catch now\n\n"
        out += alerting.reach.map { "At this volume " + DetectionReach.sentence($0) + ".\n" }
            ?? "Not known: this state directory holds no failure-spike detector (its consumer runs without alerts, or has not checkpointed yet).\n"
        if let late = DashboardData.lateAttemptsSentence(alerting.lateAttempts) { out += "\n\(late)\n" }
        return out
    }
}
