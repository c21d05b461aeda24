import Charts
import Events
import Foundation
import Marts

/// The dashboard's pages, rendered to HTML with server-side SVG charts. Every value that came from an
/// event (customer ids, reasons, plans) goes through `escape`; no script but the optional live-update poll.
public enum Page: String, CaseIterable, Sendable {
    case executive, risk, action, product, retention, growth, alerts

    public var title: String {
        switch self {
        case .executive: "Executive revenue health"
        case .risk: "Risk and root cause"
        case .action: "Action and impact"
        case .product: "Product health"
        case .retention: "Retention and risk"
        case .growth: "Growth"
        case .alerts: "Alerts"
        }
    }

    public var path: String { self == .executive ? "/" : "/\(rawValue)" }
}

public struct PageRenderer: Sendable {
    public let data: DashboardData
    /// Pages poll `/api/version` and reload when the state changed.
    public var live = true
    /// Report mode: one document, navigation by anchors.
    public var singleDocument = false

    /// What the failure-spike detector can catch now and the attempts it left out as late.
    public var alerting: AlertCoverage

    public init(data: DashboardData, live: Bool = true, singleDocument: Bool = false, alerting: AlertCoverage = .unknown) {
        self.data = data
        self.live = live
        self.singleDocument = singleDocument
        self.alerting = alerting
    }

    // MARK: Documents

    public func document(_ page: Page) -> String {
        wrap(title: page.title, body: nav(current: page) + section(page))
    }

    public func customerDocument(_ id: String) -> String? {
        guard let body = customer(id) else { return nil }
        return wrap(title: "Customer \(id)", body: nav(current: nil) + body)
    }

    /// Every page in one self-contained document (for `undercurrent report`).
    public func report() -> String {
        var r = self
        r.live = false
        r.singleDocument = true
        return r.wrap(title: "Undercurrent report", body: r.nav(current: nil) + Page.allCases.map { r.section($0) }.joined())
    }

    func wrap(title: String, body: String) -> String {
        let poll = live ? """
        <script>(function(){var v=\(jsonString(data.version));setInterval(function(){fetch('/api/version',{credentials:'same-origin'}).then(function(r){return r.json()}).then(function(j){if(j.version!==v){location.reload()}}).catch(function(){})},5000)})();</script>
        """ : ""
        return """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
        <title>\(escape(title)) · Undercurrent</title><style>\(Self.css)</style></head><body>
        <header><strong>Undercurrent</strong> <span class="asof">as of \(escape(data.asOf?.description ?? "no events yet")) · \(data.snapshot.accepted) events</span></header>
        \(historyBanner)\(body)\(poll)</body></html>
        """
    }

    /// While any mart is built on partial history: what is missing, on every page.
    var historyBanner: String {
        guard !data.historyGaps.isEmpty else { return "" }
        let items = data.historyGaps.map { "<li>\(escape($0))</li>" }.joined()
        return "<div class=\"banner\" role=\"alert\"><strong>\(escape(DashboardData.partialHistoryHeadline))</strong><ul>\(items)</ul>"
            + "\(escape(DashboardData.partialHistoryConsequence)) (see <code>/api/history</code>).</div>"
    }

    static let css = """
    .banner{background:#fff4e5;border-bottom:2px solid #e8a33d;padding:8px 20px;font-size:14px}.banner ul{margin:4px 0 4px 18px;padding:0}
    body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}header{background:#12263a;color:#fff;padding:10px 20px}
    .asof{opacity:.8;margin-left:12px;font-size:13px}nav{padding:8px 20px;background:#fff;border-bottom:1px solid #ddd}nav a{margin-right:14px;color:#0b5cad;text-decoration:none}
    nav a.cur{font-weight:700;color:#12263a}section{padding:12px 20px 28px}h1{font-size:22px;margin:8px 0 12px}h2{font-size:16px;margin:18px 0 8px}
    .tiles{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}.tile{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
    .tile .v{font-size:22px;font-weight:700}.tile .l{font-size:12px;color:#555}.tile .s{font-size:11px;color:#777}
    .charts{display:flex;flex-wrap:wrap;gap:14px}.chart-box{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}.chart-box h3{font-size:13px;margin:2px 4px 6px}
    .reading{background:#fff;border-left:4px solid #0072B2;padding:10px 14px;max-width:1100px;line-height:1.45}
    table{border-collapse:collapse;background:#fff;font-size:13px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f0f0f0}
    td.n{text-align:right;font-variant-numeric:tabular-nums}.firing{color:#b00020;font-weight:600}.resolved{color:#0a7d32}
    svg .point:hover,svg .bar:hover{opacity:.65}.empty{color:#777;font-style:italic}
    """

    func nav(current: Page?) -> String {
        "<nav>" + Page.allCases.map { p in
            let href = singleDocument ? "#\(p.rawValue)" : p.path
            return "<a href=\"\(href)\"\(p == current ? " class=\"cur\"" : "")>\(escape(p.title))</a>"
        }.joined() + "</nav>"
    }

    func section(_ page: Page) -> String {
        let content: String
        switch page {
        case .executive: content = executive()
        case .risk: content = risk()
        case .action: content = action()
        case .product: content = product()
        case .retention: content = retention()
        case .growth: content = growth()
        case .alerts: content = alertsList()
        }
        return "<section id=\"\(page.rawValue)\"><h1>\(escape(page.title))</h1>\(content)</section>"
    }

    // MARK: Building blocks

    func tile(_ label: String, _ value: String, _ sub: String = "") -> String {
        "<div class=\"tile\"><div class=\"v\">\(escape(value))</div><div class=\"l\">\(escape(label))</div>\(sub.isEmpty ? "" : "<div class=\"s\">\(escape(sub))</div>")</div>"
    }

    func tiles(_ items: [String]) -> String { "<div class=\"tiles\">" + items.joined() + "</div>" }

    func box(_ title: String, _ svg: String) -> String { "<div class=\"chart-box\"><h3>\(escape(title))</h3>\(svg)</div>" }

    func reading(_ text: String) -> String { "<p class=\"reading\">\(escape(text))</p>" }

    func table(_ headers: [String], _ rows: [[String]], numeric: Set<Int> = []) -> String {
        guard !rows.isEmpty else { return "<p class=\"empty\">Nothing yet.</p>" }
        var out = "<table><tr>" + headers.map { "<th>\(escape($0))</th>" }.joined() + "</tr>"
        for r in rows {
            out += "<tr>" + r.enumerated().map { i, v in "<td\(numeric.contains(i) ? " class=\"n\"" : "")>\(v)</td>" }.joined() + "</tr>"
        }
        return out + "</table>"
    }

    func rows(_ name: String) -> [[String: MartValue]] { data.table(name).records }
    func series(_ recs: [[String: MartValue]], _ col: String) -> [Double?] { recs.map { $0[col]?.double } }
    func months(_ recs: [[String: MartValue]]) -> [String] { recs.map { $0["month"]?.text ?? "" } }
    static let money: @Sendable (Double) -> String = { Format.money(Int64($0)) }
    static let pct: @Sendable (Double) -> String = { String(format: "%.1f%%", $0 * 100) }
    var paidPlans: [String] { Plan.allCases.filter(\.isPaid).map(\.rawValue) }

    func customerLink(_ id: String) -> String {
        let encoded = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? ""
        return singleDocument ? escape(id) : "<a href=\"/customers/\(escape(encoded))\">\(escape(id))</a>"
    }

    // MARK: 1. Executive revenue health

    func executive() -> String {
        let k = data.kpis
        let p = k.latestMonth ?? k.allTime
        var out = tiles([
            tile("total revenue", Format.money(k.allTime.revenueCents), "\(p.label): \(Format.money(p.revenueCents))"),
            tile("paying customers", String(p.payingCustomers), p.label),
            tile("payment failure rate", Format.percent(p.paymentFailureRate), p.label),
            tile("average payment attempts", Format.number(p.averagePaymentAttempts), "per invoice, \(p.label)"),
            tile("cancel intent rate", Format.percent(p.cancelIntentRate), p.label),
        ])
        let all = rows("mart_revenue_monthly").filter { $0["plan"]?.text == "all" }
        let labels = months(all)
        let growth = all.map { r in r["revenue_growth_rate"]?.double.map { "\($0 >= 0 ? "+" : "")\(String(format: "%.1f%%", $0 * 100)) on the previous month" } ?? "first month" }
        let byPlan = rows("mart_revenue_monthly")
        let rel = rows("mart_payment_reliability")
        let recoveredShare = all.map { r -> String in
            let t = Double(r["revenue_cents"]?.int ?? 0), rec = Double(r["recovered_revenue_cents"]?.int ?? 0)
            return t > 0 ? String(format: "%.1f%% of the month's revenue came from retries", rec / t * 100) : "no revenue"
        }
        out += "<div class=\"charts\">"
        out += box("Monthly revenue", lineChart(title: "Monthly revenue", labels: labels, series: [Series(name: "revenue", values: series(all, "revenue_cents"), notes: growth)], style: ChartStyle(yFormat: Self.money)))
        out += box("Revenue by plan", barChart(title: "Revenue by plan", labels: labels, series: paidPlans.map { plan in
            Series(name: plan, values: byPlan.filter { $0["plan"]?.text == plan }.map { $0["revenue_cents"]?.double })
        }, stacked: true, style: ChartStyle(yFormat: Self.money)))
        out += box("Payment failure rate", lineChart(title: "Payment failure rate", labels: months(rel), series: [
            Series(name: "all attempts", values: series(rel, "failure_rate"), notes: rel.map { "\($0["failed"]?.int ?? 0) of \($0["attempts"]?.int ?? 0) attempts failed" }),
            Series(name: "first attempts", values: series(rel, "first_attempt_failure_rate")),
        ], style: ChartStyle(yFormat: Self.pct)))
        out += box("Average payment attempts per invoice", lineChart(title: "Average payment attempts", labels: months(rel), series: [
            Series(name: "attempts per invoice", values: series(rel, "avg_attempts_per_invoice"), notes: rel.map { "\($0["invoices_attempted"]?.int ?? 0) invoices attempted" }),
        ], style: ChartStyle(yMin: nil, yFormat: { String(format: "%.2f", $0) })))
        out += box("First-attempt vs recovered revenue", barChart(title: "First-attempt vs recovered revenue", labels: labels, series: [
            Series(name: "first attempts", values: series(all, "first_attempt_revenue_cents")),
            Series(name: "recovered by retries", values: series(all, "recovered_revenue_cents"), notes: recoveredShare),
        ], stacked: true, style: ChartStyle(yFormat: Self.money)))
        out += "</div>"
        out += reading(executiveReading())
        return out
    }

    func executiveReading() -> String {
        let n = Narrative(data)
        if let s = n.insufficient { return s }
        return n.findings.filter { $0.id == "revenue" || $0.id == "failure_rise" }.map(\.text).joined(separator: " ")
    }

    // MARK: 2. Risk and root cause

    func risk() -> String {
        let plans = rows("mart_payment_reliability_plan_monthly")
        let reasons = rows("mart_failure_reason_monthly")
        let labels = data.months
        let customers = rows("mart_customer_360")
        var segments: [String: (Int, Int64)] = [:]
        for c in customers {
            let s = c["risk_segment"]?.text ?? "low"
            segments[s, default: (0, 0)].0 += 1
            segments[s, default: (0, 0)].1 += c["mrr_cents"]?.int ?? 0
        }
        var hard = 0.0, total = 0.0
        let recentMonths = Set(labels.suffix(4).dropLast())
        for r in reasons where recentMonths.contains(r["month"]?.text ?? "") {
            let f = r["failures"]?.double ?? 0
            total += f
            if r["decline_type"]?.text == "hard" { hard += f }
        }
        let k = data.kpis
        var out = tiles([
            tile("payment failure rate", Format.percent((k.latestMonth ?? k.allTime).paymentFailureRate), (k.latestMonth ?? k.allTime).label),
            tile("hard declines", total > 0 ? Format.percent(hard / total) : "n/a", "of failures, last 3 complete months"),
            tile("MRR at risk", Format.money(k.mrrAtRiskCents), "high + critical segments"),
            tile("customers at risk", String((segments["high"]?.0 ?? 0) + (segments["critical"]?.0 ?? 0)), "high + critical"),
        ])
        let reasonNames = Array(Set(reasons.compactMap { $0["failure_reason"]?.text })).sorted()
        func reasonSeries(_ name: String) -> Series {
            let owner = FailureReason(rawValue: name).map { "\($0.declineType.rawValue) decline; fix: \($0.owner)" } ?? ""
            return Series(name: name, values: labels.map { m in reasons.first { $0["month"]?.text == m && $0["failure_reason"]?.text == name }?["failures"]?.double },
                          notes: labels.map { _ in owner })
        }
        func declineSeries(_ type: String) -> Series {
            Series(name: type, values: labels.map { m in reasons.filter { $0["month"]?.text == m && $0["decline_type"]?.text == type }.reduce(0.0) { $0 + ($1["failures"]?.double ?? 0) } })
        }
        let engagement = rows("mart_engagement")
        let churn = rows("mart_failure_to_churn_signal")
        func signal(_ failed: Bool, _ num: String) -> Double? {
            let g = churn.filter { $0["had_failure"]?.text == (failed ? "true" : "false") }
            let d = g.reduce(0.0) { $0 + ($1["customers"]?.double ?? 0) }
            return d > 0 ? g.reduce(0.0) { $0 + ($1[num]?.double ?? 0) } / d : nil
        }
        out += "<div class=\"charts\">"
        out += box("Failure rate by plan", lineChart(title: "Failure rate by plan", labels: labels, series: paidPlans.map { plan in
            Series(name: plan, values: labels.map { m in plans.first { $0["month"]?.text == m && $0["plan"]?.text == plan }?["failure_rate"]?.double })
        }, style: ChartStyle(yFormat: Self.pct)))
        out += box("Failure reasons over time", barChart(title: "Failure reasons over time", labels: labels, series: reasonNames.map(reasonSeries), stacked: true))
        out += box("Soft vs hard declines", barChart(title: "Soft vs hard declines", labels: labels, series: [declineSeries("soft"), declineSeries("hard")], stacked: true))
        out += box("Engagement", lineChart(title: "Engagement", labels: months(engagement), series: [
            Series(name: "active customers", values: series(engagement, "active_customers")),
            Series(name: "core-active customers", values: series(engagement, "core_active_customers")),
        ]))
        out += box("Customers by risk segment", barChart(title: "Customers by risk segment", labels: RiskModel.Segment.allCases.map(\.rawValue), series: [
            Series(name: "customers", values: RiskModel.Segment.allCases.map { Double(segments[$0.rawValue]?.0 ?? 0) },
                   notes: RiskModel.Segment.allCases.map { "MRR \(Format.money(segments[$0.rawValue]?.1 ?? 0))" }),
        ]))
        out += box("Failure-to-churn signal", barChart(title: "Failure-to-churn signal", labels: ["churn rate", "cancel intent rate"], series: [
            Series(name: "with a payment failure", values: [signal(true, "churned_customers"), signal(true, "cancel_intent_customers")]),
            Series(name: "without", values: [signal(false, "churned_customers"), signal(false, "cancel_intent_customers")]),
        ], style: ChartStyle(yFormat: Self.pct)))
        out += "</div>"
        var text = "Hard declines (only the customer can fix the card) were \(total > 0 ? Format.percent(hard / total) : "n/a") of failures in the last three complete months."
        if let a = signal(true, "churned_customers"), let b = signal(false, "churned_customers") {
            text += " Billed customers with a payment failure churned at \(Format.percent(a)) within two months, against \(Format.percent(b)) for those without"
            text += b > 0 ? String(format: " (%.1f times as often).", a / b) : "."
        }
        text += " \(Format.money(k.mrrAtRiskCents)) of MRR sits with high- and critical-risk customers."
        out += reading(text)
        return out
    }

    // MARK: 3. Action and impact

    func action() -> String {
        let narrative = Narrative(data, reach: alerting.reach)
        let recovery = rows("mart_recovery_opportunity")
        let recent = Set(data.months.suffix(Narrative.recentMonths + 1).dropLast())
        var byReason: [String: (lost: Int64, recovered: Int64, lostN: Int64, recN: Int64)] = [:]
        for r in recovery where recent.contains(r["month"]?.text ?? "") {
            let k = r["failure_reason"]?.text ?? ""
            var v = byReason[k] ?? (0, 0, 0, 0)
            v.lost += r["lost_cents"]?.int ?? 0
            v.recovered += r["recovered_cents"]?.int ?? 0
            v.lostN += r["lost_invoices"]?.int ?? 0
            v.recN += r["recovered_invoices"]?.int ?? 0
            byReason[k] = v
        }
        let ranked = byReason.sorted { $0.value.lost != $1.value.lost ? $0.value.lost > $1.value.lost : $0.key < $1.key }
        var byOwner: [String: Int64] = [:]
        for (k, v) in byReason { byOwner[FailureReason(rawValue: k).map(Narrative.ownerGroup) ?? "other", default: 0] += v.lost }
        let owners = byOwner.keys.sorted()
        let lost = byReason.values.reduce(0) { $0 + $1.lost }, recovered = byReason.values.reduce(0) { $0 + $1.recovered }
        var out = tiles([
            tile("revenue lost", Format.money(lost), "uncollectible invoices, last 3 complete months"),
            tile("recovered by retries", Format.money(recovered), "same months"),
            tile("top reason", ranked.first?.key ?? "none", ranked.first.map { Format.money($0.value.lost) } ?? ""),
        ])
        out += "<div class=\"charts\">"
        out += box("Revenue lost and recovered by reason", barChart(title: "Lost and recovered by reason", labels: ranked.map(\.key), series: [
            Series(name: "lost", values: ranked.map { Double($0.value.lost) }, notes: ranked.map { FailureReason(rawValue: $0.key).map { "fix: \($0.owner)" } ?? "" }, color: "#D55E00"),
            Series(name: "recovered", values: ranked.map { Double($0.value.recovered) }, color: "#009E73"),
        ], style: ChartStyle(yFormat: Self.money)))
        out += box("Revenue lost by owner", barChart(title: "Lost by owner", labels: owners, series: [
            Series(name: "lost", values: owners.map { Double(byOwner[$0] ?? 0) }),
        ], style: ChartStyle(width: 420, yFormat: Self.money)))
        out += "</div>"
        out += "<h2>Expected impact of fixing the top reasons</h2>"
        out += table(["reason", "who can fix it", "lost (3 months)", "recovered (3 months)", "recovery rate", "a year at this run-rate"],
                     ranked.prefix(5).map { r in
                         let rate = r.value.lostN + r.value.recN > 0 ? Double(r.value.recN) / Double(r.value.lostN + r.value.recN) : nil
                         return [escape(r.key), escape(FailureReason(rawValue: r.key)?.owner ?? ""), Format.money(r.value.lost), Format.money(r.value.recovered),
                                 Format.percent(rate), Format.money(r.value.lost * 4)]
                     }, numeric: [2, 3, 4, 5])
        out += "<h2>Executive narrative</h2>" + narrativeHTML(narrative)
        return out
    }

    func narrativeHTML(_ n: Narrative) -> String {
        var out = n.insufficient.map { reading($0) } ?? ""
        out += n.findings.map { "<p class=\"reading\"><strong>\(escape($0.title)).</strong> \(escape($0.text))</p>" }.joined()
        if !n.recommendations.isEmpty {
            out += "<h2>Recommendations</h2><ol>" + n.recommendations.map { "<li>\(escape($0))</li>" }.joined() + "</ol>"
        }
        return out
    }

    // MARK: 4. Product health

    func product() -> String {
        let cohorts = rows("mart_activation_cohort")
        let labels = cohorts.map { $0["signup_month"]?.text ?? "" }
        let k = data.kpis
        let customers = rows("mart_customer_360")
        let zombies = customers.filter { $0["is_zombie"]?.text == "true" }.sorted {
            ($0["mrr_cents"]?.int ?? 0, $1["customer_id"]?.text ?? "") > ($1["mrr_cents"]?.int ?? 0, $0["customer_id"]?.text ?? "")
        }
        let zombieMrr = zombies.reduce(Int64(0)) { $0 + ($1["mrr_cents"]?.int ?? 0) }
        var out = tiles([
            tile("activation rate", Format.percent(k.allTime.activationRate), "all cohorts"),
            tile("zombie accounts", String(k.zombieAccounts), "paying, no core use in 30 days"),
            tile("zombie MRR", Format.money(zombieMrr)),
        ])
        func retention(_ col: String) -> [Double?] {
            cohorts.map { r in
                guard let n = r[col]?.double, let c = r["converted"]?.double, c > 0 else { return nil }
                return n / c
            }
        }
        out += "<div class=\"charts\">"
        out += box("Activation rate by signup cohort", lineChart(title: "Activation rate by cohort", labels: labels, series: [
            Series(name: "activated within 14 days", values: series(cohorts, "activation_rate"), notes: cohorts.map { "\($0["activated"]?.int ?? 0) of \($0["signups"]?.int ?? 0) signups" }),
            Series(name: "converted to paid", values: series(cohorts, "paid_conversion_rate")),
        ], style: ChartStyle(yFormat: Self.pct)))
        out += box("Median time to value (days)", barChart(title: "Median time to value", labels: labels, series: [
            Series(name: "median days", values: cohorts.map { $0["median_ttv_seconds"]?.double.map { $0 / 86_400 } }),
        ], style: ChartStyle(yFormat: { String(format: "%.1f", $0) })))
        out += box("Cohort retention (of converted)", lineChart(title: "Cohort retention", labels: labels, series: [
            Series(name: "month 1", values: retention("retained_m1")), Series(name: "month 3", values: retention("retained_m3")),
        ], style: ChartStyle(yFormat: Self.pct)))
        out += "</div><h2>Zombie accounts by MRR</h2>"
        out += table(["customer", "plan", "MRR", "last active", "risk"], zombies.prefix(15).map { z in
            [customerLink(z["customer_id"]?.text ?? ""), escape(z["plan"]?.text ?? ""), Format.money(z["mrr_cents"]?.int ?? 0),
             escape(z["last_active_at"]?.text ?? "never"), escape(z["risk_segment"]?.text ?? "")]
        }, numeric: [2])
        let last = cohorts.last(where: { $0["retained_m3"]?.int != nil })
        var text = "\(Format.percent(k.allTime.activationRate)) of signups used a core feature within 14 days."
        if let last, let c = last["converted"]?.double, c > 0, let r3 = last["retained_m3"]?.double {
            text += " Of the \(last["signup_month"]?.text ?? "") cohort's \(Int(c)) paying converts, \(Format.percent(r3 / c)) still paid three months later."
        }
        text += " \(k.zombieAccounts) paying accounts (\(Format.money(zombieMrr)) MRR) have not used a core feature in 30 days."
        out += reading(text)
        return out
    }

    // MARK: 5. Retention and risk

    public func atRiskRows(limit: Int) -> [[String: MartValue]] {
        rows("mart_customer_360").filter { ["high", "critical"].contains($0["risk_segment"]?.text ?? "") }.sorted {
            let a = ($0["mrr_cents"]?.int ?? 0, $0["risk_score"]?.int ?? 0), b = ($1["mrr_cents"]?.int ?? 0, $1["risk_score"]?.int ?? 0)
            return a != b ? a > b : ($0["customer_id"]?.text ?? "") < ($1["customer_id"]?.text ?? "")
        }.prefix(limit).map { $0 }
    }

    func retention() -> String {
        let list = atRiskRows(limit: 100)
        let all = atRiskRows(limit: Int.max)
        var out = tiles([
            tile("accounts at risk", String(all.count), "high + critical"),
            tile("MRR at risk", Format.money(data.kpis.mrrAtRiskCents)),
            tile("critical", String(all.filter { $0["risk_segment"]?.text == "critical" }.count)),
        ])
        out += "<h2>Customer Success worklist (by MRR at risk)</h2>"
        out += table(["customer", "segment", "score", "MRR", "plan", "status", "reasons", "last failure", "last active"], list.map { c in
            [customerLink(c["customer_id"]?.text ?? ""), escape(c["risk_segment"]?.text ?? ""), String(c["risk_score"]?.int ?? 0),
             Format.money(c["mrr_cents"]?.int ?? 0), escape(c["plan"]?.text ?? ""), escape(c["status"]?.text ?? ""),
             escape((c["risk_reasons"]?.text ?? "").replacingOccurrences(of: ";", with: ", ")), escape(c["last_failure_reason"]?.text ?? ""),
             escape(c["last_active_at"]?.text ?? "never")]
        }, numeric: [2, 3])
        out += reading(all.isEmpty ? "No customer is at high or critical risk."
                       : "\(all.count) accounts carry \(Format.money(data.kpis.mrrAtRiskCents)) of MRR at high or critical risk; the list starts with the largest. Each reason code is explained in the README's risk model.")
        return out
    }

    // MARK: Customer page

    public func customer(_ id: String) -> String? {
        guard let state = data.snapshot.customers[id] else { return nil }
        let row = rows("mart_customer_360").first { $0["customer_id"]?.text == id } ?? [:]
        let columns = data.table("mart_customer_360").columns
        var out = "<section><h1>Customer \(escape(id))</h1>"
        out += table(["column", "value"], columns.map { [escape($0), escape(row[$0]?.text ?? row[$0]?.double.map { String($0) } ?? "")] })
        out += "<h2>Timeline</h2>" + table(["time", "what"], CustomerTimeline.entries(state).map { [escape($0.time.description), escape($0.text)] })
        return out + "</section>"
    }

    // MARK: 6. Growth

    func growth() -> String {
        let mrr = rows("mart_mrr_movements")
        let labels = months(mrr)
        var out = ""
        let complete = mrr.count >= 2 ? mrr[mrr.count - 2] : mrr.last
        if let m = complete {
            out += tiles([
                tile("ending MRR", Format.money(m["ending_mrr_cents"]?.int ?? 0), m["month"]?.text ?? ""),
                tile("net MRR churn", Format.percent(m["net_mrr_churn_rate"]?.double), m["month"]?.text ?? ""),
                tile("new MRR", Format.money(m["new_mrr_cents"]?.int ?? 0)),
                tile("churned MRR", Format.money((m["churned_voluntary_mrr_cents"]?.int ?? 0) + (m["churned_involuntary_mrr_cents"]?.int ?? 0)), "voluntary + involuntary"),
            ])
            func v(_ c: String) -> Double { m[c]?.double ?? 0 }
            out += "<div class=\"charts\">"
            out += box("MRR waterfall, \(m["month"]?.text ?? "")", waterfallChart(title: "MRR waterfall", start: ("start", v("starting_mrr_cents")), steps: [
                ("new", v("new_mrr_cents")), ("expansion", v("expansion_mrr_cents")), ("reactivation", v("reactivation_mrr_cents")),
                ("contraction", -v("contraction_mrr_cents")), ("churn voluntary", -v("churned_voluntary_mrr_cents")),
                ("churn involuntary", -v("churned_involuntary_mrr_cents")),
            ], endLabel: "end", style: ChartStyle(yFormat: Self.money)))
        } else {
            out += "<div class=\"charts\">"
        }
        out += box("MRR movements per month", barChart(title: "MRR movements", labels: labels, series: [
            Series(name: "new", values: series(mrr, "new_mrr_cents")), Series(name: "expansion", values: series(mrr, "expansion_mrr_cents")),
            Series(name: "reactivation", values: series(mrr, "reactivation_mrr_cents")),
            Series(name: "contraction", values: mrr.map { -($0["contraction_mrr_cents"]?.double ?? 0) }),
            Series(name: "churn voluntary", values: mrr.map { -($0["churned_voluntary_mrr_cents"]?.double ?? 0) }),
            Series(name: "churn involuntary", values: mrr.map { -($0["churned_involuntary_mrr_cents"]?.double ?? 0) }),
        ], stacked: true, style: ChartStyle(yFormat: Self.money)))
        out += box("Net MRR churn", lineChart(title: "Net MRR churn", labels: labels, series: [
            Series(name: "net MRR churn", values: series(mrr, "net_mrr_churn_rate")),
        ], style: ChartStyle(yMin: nil, yFormat: Self.pct)))
        out += "</div>"
        if let m = complete {
            let inv = m["churned_involuntary_mrr_cents"]?.int ?? 0, vol = m["churned_voluntary_mrr_cents"]?.int ?? 0
            let share = inv + vol > 0 ? Double(inv) / Double(inv + vol) : nil
            out += reading("In \(m["month"]?.text ?? ""), MRR went from \(Format.money(m["starting_mrr_cents"]?.int ?? 0)) to \(Format.money(m["ending_mrr_cents"]?.int ?? 0)); net MRR churn was \(Format.percent(m["net_mrr_churn_rate"]?.double)). Involuntary churn (failed payments) was \(Format.percent(share)) of churned MRR.")
        }
        return out
    }

    // MARK: Alerts

    func alertsList() -> String {
        let firing = Set(data.alerts.filter { $0.state == .firing }.map { "\($0.rule)|\($0.scope)|\($0.firingSince.ms)" })
            .subtracting(data.alerts.filter { $0.state == .resolved }.map { "\($0.rule)|\($0.scope)|\($0.firingSince.ms)" })
        var out = tiles([tile("firing now", String(firing.count)), tile("alerts raised", String(data.alerts.filter { $0.state == .firing }.count))])
        out += table(["state", "rule", "scope", "at (event time)", "observed", "baseline", "attempts / failures", "window", "shift began", "evidence"],
                     data.alerts.reversed().map { a in
            ["<span class=\"\(a.state.rawValue)\">\(a.state.rawValue)</span>", escape(a.rule), escape(a.scope), escape(a.at.description),
             Format.percent(a.observedRate), Format.percent(a.baselineRate), "\(a.attempts) / \(a.failures)", "\(a.windowMinutes) min",
             a.shiftStart.map { escape($0.description) } ?? "–",
             // The likelihood ratio in powers of ten reads better than nats; one resolved with a wider scope says so.
             a.resolvedWith.map { "with [\(escape($0))]" } ?? a.evidence.map { String(format: "10^%.1f", $0 / log(10)) } ?? "–"]
        })
        out += "<h2>What the detector can catch now</h2>"
        guard let reach = alerting.reach else {
            return out + reading("Not known: this state directory holds no failure-spike detector (its consumer runs without alerts, "
                + "or has not checkpointed yet).")
        }
        out += reading("At this volume " + DetectionReach.sentence(reach) + ".")
        if let late = DashboardData.lateAttemptsSentence(alerting.lateAttempts) { out += reading(late) }
        let seen = reach.filter { $0.attemptsPerHour > 0 && !$0.scope.contains("/") }
        let percent = Int(((reach.first?.outageRate ?? 0.5) * 100).rounded())
        out += table(["scope", "first attempts an hour", "baseline failure rate", "an outage failing \(percent)% caught in"], seen.map { r in
            [escape(r.scope), DetectionReach.rate(r.attemptsPerHour), Format.percent(r.baselineRate),
             r.hoursToDetect.map { "about " + DetectionReach.duration($0) } ?? (r.baselineRate == nil ? "learning the baseline" : "–")]
        })
        return out
    }
}

/// A customer's history as the consumer's state keeps it: milestones and monthly activity. (Individual
/// `feature.used` events are not kept, only their monthly counts.)
public enum CustomerTimeline {
    public struct Entry: Sendable, Equatable {
        public var time: Timestamp
        public var text: String
    }

    public static func entries(_ c: CustomerState) -> [Entry] {
        var out: [Entry] = []
        if let t = c.signedUpAt { out.append(Entry(time: t, text: "signed up")) }
        for s in c.subscriptions {
            let t = Timestamp(ms: s.key.time)
            switch s.kind {
            case let .started(plan, mrr): out.append(Entry(time: t, text: "subscription started: \(plan.rawValue), MRR \(Format.money(mrr))"))
            case let .changed(from, to, plan): out.append(Entry(time: t, text: "plan changed to \(plan.rawValue): MRR \(Format.money(from)) → \(Format.money(to))"))
            case let .canceled(how, mrr): out.append(Entry(time: t, text: "subscription canceled (\(how.rawValue)), MRR \(Format.money(mrr))"))
            }
        }
        if let t = c.firstCoreUse { out.append(Entry(time: t, text: "first core-feature use")) }
        for inv in c.invoices.values {
            if let f = inv.firstFailure { out.append(Entry(time: Timestamp(ms: f.key.time), text: "payment failed (attempt \(f.attempt)): \(f.reason.rawValue)")) }
            if let e = inv.end {
                out.append(Entry(time: Timestamp(ms: e.key.time), text: e.paid ? "invoice paid after \(e.attempts) attempt(s), \(Format.money(e.amount))" : "invoice uncollectible, \(Format.money(e.amount))"))
            }
        }
        if let f = c.lastFailure { out.append(Entry(time: Timestamp(ms: f.key.time), text: "latest payment failure: \(f.reason.rawValue)")) }
        for t in c.recentCancelIntents { out.append(Entry(time: Timestamp(ms: t), text: "cancel intent")) }
        if let t = c.lastActive { out.append(Entry(time: t, text: "last active")) }
        for (index, flags) in c.months.entries where flags.featureEvents > 0 || flags.has(MonthFlags.billed) {
            let month = Month(index: index)
            var parts: [String] = []
            if flags.featureEvents > 0 { parts.append("\(flags.featureEvents) feature events\(flags.has(MonthFlags.coreActive) ? " (core use)" : "")") }
            if flags.has(MonthFlags.billed) { parts.append("billed") }
            if flags.has(MonthFlags.failed) { parts.append("a payment failed") }
            if flags.has(MonthFlags.cancelIntent) { parts.append("cancel intent") }
            out.append(Entry(time: Timestamp(ms: month.start.ms), text: "\(month): " + parts.joined(separator: ", ")))
        }
        return out.sorted { $0.time != $1.time ? $0.time < $1.time : $0.text < $1.text }
    }
}
