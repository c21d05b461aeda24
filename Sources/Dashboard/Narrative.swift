import Events
import Foundation
import Marts

/// The executive narrative: findings and recommendations generated from the marts. Deterministic (the same
/// marts give the same text), every number is a mart's number (the `numbers` of each finding carry them
/// unformatted, for tests and the API), and it says so when there is too little data to conclude.
public struct Narrative: Sendable {
    public struct Finding: Sendable, Equatable {
        public var id: String
        public var title: String
        public var text: String
        /// The numbers the text states, by name, as the marts hold them (cents, fractions, counts).
        public var numbers: [String: Double]
    }

    public var findings: [Finding] = []
    public var recommendations: [String] = []
    /// Set when the marts hold too little to conclude anything.
    public var insufficient: String?

    /// Months a comparison needs at least, and attempts a month needs before its failure rate is read.
    public static let minimumMonths = 3
    public static let minimumAttempts: Int64 = 50
    /// The window "recent" means: the last three complete months.
    public static let recentMonths = 3

    /// `reach`: what the failure-spike detector can catch at the present volume (nil: not known, the state holds
    /// no detector), for the outages finding.
    public init(_ d: DashboardData, reach: [DetectionReach]? = nil) {
        // What the figures were not built on comes first, and is said even when they are too few to conclude.
        if !d.historyGaps.isEmpty {
            findings.append(Finding(id: "partial_history", title: "Partial history",
                                    text: "These figures were built without the first messages of some inputs: "
                                        + d.historyGaps.joined(separator: " ") + " " + DashboardData.partialHistoryConsequence
                                        + ", so their lifetime revenue, invoices and cohorts are undercounted.",
                                    numbers: ["inputs_with_gaps": Double(d.historyGaps.count)]))
        }
        conclude(d)
        findings.append(Self.outages(d, reach: reach))
    }

    private mutating func conclude(_ d: DashboardData) {
        let reliability = d.table("mart_payment_reliability").records
        let complete = Array(reliability.dropLast())  // the last month of the range is still running
        guard complete.count >= Self.minimumMonths,
              complete.suffix(Self.recentMonths).allSatisfy({ ($0["attempts"]?.int ?? 0) >= Self.minimumAttempts }) else {
            insufficient = "Too little data to conclude: the marts hold \(complete.count) complete month(s) and the narrative needs \(Self.minimumMonths), each of the last \(Self.recentMonths) with at least \(Self.minimumAttempts) payment attempts."
            return
        }
        let months = complete.compactMap { $0["month"]?.text }
        let latest = months.last!, previous = months[months.count - 2]
        let recent = Set(months.suffix(Self.recentMonths))

        // 1. Revenue and how much of it retries brought in.
        let revenue = d.table("mart_revenue_monthly").records.filter { $0["plan"]?.text == "all" }
        if let now = revenue.first(where: { $0["month"]?.text == latest }), let before = revenue.first(where: { $0["month"]?.text == previous }) {
            let r = now["revenue_cents"]?.int ?? 0, p = before["revenue_cents"]?.int ?? 0
            let recovered = now["recovered_revenue_cents"]?.int ?? 0
            let growth = now["revenue_growth_rate"]?.double
            let share = r > 0 ? Double(recovered) / Double(r) : 0
            var text = "Revenue in \(latest) was \(Format.money(r))"
            if let growth { text += ", \(growth >= 0 ? "up" : "down") \(Format.percent(abs(growth))) from \(Format.money(p)) in \(previous)" }
            text += ". Retries brought in \(Format.money(recovered)) of it (\(Format.percent(share))): revenue that first attempts failed to collect."
            var numbers: [String: Double] = ["revenue_cents": Double(r), "previous_revenue_cents": Double(p), "recovered_revenue_cents": Double(recovered),
                                             "recovered_share": share]
            if let growth { numbers["revenue_growth_rate"] = growth }
            findings.append(Finding(id: "revenue", title: "Revenue", text: text, numbers: numbers))
        }

        // 2. The largest rise in the failure rate among the recent months, and what drove it.
        var rise: (month: String, from: Double, to: Double)? = nil
        for i in 1..<complete.count where recent.contains(months[i]) {
            guard let a = complete[i - 1]["failure_rate"]?.double, let b = complete[i]["failure_rate"]?.double, b > a else { continue }
            if rise == nil || b - a > rise!.to - rise!.from { rise = (months[i], a, b) }
        }
        let latestRate = complete.last!["failure_rate"]?.double ?? 0
        if let rise {
            let prev = months[months.firstIndex(of: rise.month)! - 1]
            let plans = d.table("mart_payment_reliability_plan_monthly").records
            func planRate(_ m: String, _ plan: String) -> Double { plans.first { $0["month"]?.text == m && $0["plan"]?.text == plan }?["failure_rate"]?.double ?? 0 }
            let planNames = Plan.allCases.filter(\.isPaid).map(\.rawValue)
            let plan = planNames.max { (planRate(rise.month, $0) - planRate(prev, $0), $1) < (planRate(rise.month, $1) - planRate(prev, $1), $0) }!
            let reasons = d.table("mart_failure_reason_monthly").records
            func failures(_ m: String, _ r: String) -> Int64 { reasons.first { $0["month"]?.text == m && $0["failure_reason"]?.text == r }?["failures"]?.int ?? 0 }
            let reasonNames = FailureReason.allCases.map(\.rawValue).sorted()
            let reason = reasonNames.max { (failures(rise.month, $0) - failures(prev, $0), $1) < (failures(rise.month, $1) - failures(prev, $1), $0) }!
            let dr = failures(rise.month, reason) - failures(prev, reason)
            let text = "The payment failure rate rose from \(Format.percent(rise.from)) in \(prev) to \(Format.percent(rise.to)) in \(rise.month). "
                + "The \(plan) plan rose most (\(Format.percent(planRate(prev, plan))) → \(Format.percent(planRate(rise.month, plan)))), "
                + "and \(reason) failures grew most (\(dr >= 0 ? "+" : "")\(dr), owner: \(FailureReason(rawValue: reason)!.owner)). "
                + "In \(latest) the rate was \(Format.percent(latestRate))."
            findings.append(Finding(id: "failure_rise", title: "What drove the failure rate", text: text, numbers: [
                "from_rate": rise.from, "to_rate": rise.to, "plan_from_rate": planRate(prev, plan), "plan_to_rate": planRate(rise.month, plan),
                "reason_failure_change": Double(dr), "latest_rate": latestRate]))
        } else {
            findings.append(Finding(id: "failure_rise", title: "What drove the failure rate",
                                    text: "The payment failure rate did not rise in the last \(Self.recentMonths) complete months; it was \(Format.percent(latestRate)) in \(latest).",
                                    numbers: ["latest_rate": latestRate]))
        }

        // 3. Revenue lost and recoverable, by reason and owner, over the recent months.
        var lost: [String: Int64] = [:], recovered: [String: Int64] = [:], lostInvoices: [String: Int64] = [:], recoveredInvoices: [String: Int64] = [:]
        for row in d.table("mart_recovery_opportunity").records where recent.contains(row["month"]?.text ?? "") {
            let r = row["failure_reason"]?.text ?? ""
            lost[r, default: 0] += row["lost_cents"]?.int ?? 0
            recovered[r, default: 0] += row["recovered_cents"]?.int ?? 0
            lostInvoices[r, default: 0] += row["lost_invoices"]?.int ?? 0
            recoveredInvoices[r, default: 0] += row["recovered_invoices"]?.int ?? 0
        }
        let totalLost = lost.values.reduce(0, +), totalRecovered = recovered.values.reduce(0, +)
        var byOwner: [String: Int64] = [:]
        for (r, c) in lost { byOwner[FailureReason(rawValue: r).map { Self.ownerGroup($0) } ?? "other", default: 0] += c }
        let window = "\(months.suffix(Self.recentMonths).first!)–\(latest)"
        if totalLost + totalRecovered > 0 {
            let rate = Double(lostInvoices.values.reduce(0, +)) + Double(recoveredInvoices.values.reduce(0, +)) > 0
                ? Double(recoveredInvoices.values.reduce(0, +)) / Double(lostInvoices.values.reduce(0, +) + recoveredInvoices.values.reduce(0, +)) : 0
            let owners = byOwner.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            let text = "In \(window), \(Format.money(totalLost)) of invoices ended uncollectible after failed payments and \(Format.money(totalRecovered)) was recovered by retries (\(Format.percent(rate)) of failed invoices recovered). "
                + "Lost revenue by who can fix it: " + owners.map { "\($0.key) \(Format.money($0.value))" }.joined(separator: ", ") + "."
            var numbers: [String: Double] = ["lost_cents": Double(totalLost), "recovered_cents": Double(totalRecovered), "recovery_rate": rate]
            for (o, c) in byOwner { numbers["lost_cents_\(o)"] = Double(c) }
            findings.append(Finding(id: "recoverable", title: "Revenue lost and recoverable", text: text, numbers: numbers))
        }

        // 4. Where engineering should focus first, and the expected impact of fixing the top reasons.
        let ranked = lost.filter { $0.value > 0 }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        if let eng = ranked.first(where: { FailureReason(rawValue: $0.key).map(Self.ownerGroup) == "engineering" }) {
            let yearly = eng.value * 4
            findings.append(Finding(id: "engineering_focus", title: "Where engineering should focus first",
                                    text: "\(eng.key) is the engineering-owned reason that lost the most revenue in \(window): \(Format.money(eng.value)). Fixing it would keep about \(Format.money(yearly)) a year at this run-rate (four times the quarter's loss).",
                                    numbers: ["lost_cents": Double(eng.value), "yearly_cents": Double(yearly)]))
            recommendations.append("Engineering: fix \(eng.key) first (\(Format.money(eng.value)) lost in \(window), about \(Format.money(yearly)) a year).")
        }
        for (reason, cents) in ranked.prefix(3) {
            guard let r = FailureReason(rawValue: reason) else { continue }
            switch Self.ownerGroup(r) {
            case "engineering": continue
            case "dunning": recommendations.append("Dunning: tune the retry schedule for \(reason) (\(Format.money(cents)) lost in \(window)).")
            case "risk team": recommendations.append("Risk team: review \(reason) declines (\(Format.money(cents)) lost in \(window)).")
            default: recommendations.append("Customer success: ask affected customers to update their card for \(reason) (\(Format.money(cents)) lost in \(window)).")
            }
        }

        // 5. Customers at risk.
        let customers = d.table("mart_customer_360").records
        var segmentCount: [String: Int] = [:]
        var reasonCount: [String: Int] = [:]
        for c in customers {
            let seg = c["risk_segment"]?.text ?? "low"
            segmentCount[seg, default: 0] += 1
            guard seg == "high" || seg == "critical" else { continue }
            for code in (c["risk_reasons"]?.text ?? "").split(separator: ";") { reasonCount[String(code), default: 0] += 1 }
        }
        let atRisk = (segmentCount["high"] ?? 0) + (segmentCount["critical"] ?? 0)
        let topReasons = reasonCount.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(3)
        var riskText = "\(atRisk) customers are at high or critical risk, with \(Format.money(d.kpis.mrrAtRiskCents)) of MRR."
        if !topReasons.isEmpty { riskText += " Their most common reasons: " + topReasons.map { "\($0.key) (\($0.value))" }.joined(separator: ", ") + "." }
        findings.append(Finding(id: "at_risk", title: "Customers at risk", text: riskText,
                                numbers: ["customers": Double(atRisk), "mrr_at_risk_cents": Double(d.kpis.mrrAtRiskCents)]))
        if atRisk > 0 { recommendations.append("Customer success: work the at-risk list from the top (\(atRisk) accounts, \(Format.money(d.kpis.mrrAtRiskCents)) MRR).") }
    }

    /// The failure spikes raised since the first of the recent months (the running month included), or that none
    /// was, with what the detector could catch at this volume: an executive reading "no spike" must also read whether
    /// one could have been seen.
    static func outages(_ d: DashboardData, reach: [DetectionReach]?) -> Finding {
        let months = d.months
        let since = months.count > Self.recentMonths ? months[months.count - 1 - Self.recentMonths] : months.first
        // Those raised in the window, and any still firing, however long ago it began.
        let spikes = Spike.all(in: d.alerts, asOf: d.asOf).filter { since == nil || $0.resolvedAt == nil || $0.firingSince.month.description >= since! }
        let window = since.map { "since \($0)" } ?? "so far"
        var text: String
        let firing = spikes.filter { $0.resolvedAt == nil }.count
        var numbers: [String: Double] = ["spikes": Double(spikes.count), "firing": Double(firing)]
        if spikes.isEmpty {
            text = "No failure spike was raised \(window)."
        } else {
            // The latest first: what an executive asks about is what is happening now.
            let latest = spikes.sorted { $0.firingSince != $1.firingSince ? $0.firingSince > $1.firingSince : $0.scope < $1.scope }
            let fromBefore = since.map { s in spikes.contains { $0.firingSince.month.description < s } } ?? false
            text = "\(spikes.count) failure spike\(spikes.count == 1 ? " was" : "s were") raised \(window)\(fromBefore ? " or still fire from before" : ""): "
                + latest.prefix(3).map(\.sentence).joined(separator: "; ")
                + (spikes.count > 3 ? "; and \(spikes.count - 3) more (see the alerts page)." : ".")
            if firing > 0 && spikes.count > 1 { text += " \(firing) of them \(firing == 1 ? "is" : "are") still firing." }
        }
        if let reach {
            text += " At this volume " + DetectionReach.sentence(reach) + "."
            if let hours = reach.first(where: { $0.scope == "overall" })?.hoursToDetect { numbers["overall_hours_to_detect"] = hours }
        } else {
            text += " Whether an outage could have been seen is not known: this state holds no failure-spike detector "
                + "(the consumer runs without alerts, or has not checkpointed yet)."
        }
        return Finding(id: "outages", title: "Payment outages", text: text, numbers: numbers)
    }

    /// One raised alert: from its firing to its resolution, if any.
    struct Spike {
        var scope: String
        var firingSince: Timestamp
        /// The detector's estimate of when the shift began (sequential alerts).
        var shiftStart: Timestamp?
        var resolvedAt: Timestamp?
        var observedRate: Double
        var baselineRate: Double
        var hours: Double

        /// The alerts' firings, each with its resolution if there is one; a firing without one lasts up to `asOf`.
        static func all(in alerts: [Alert], asOf: Timestamp?) -> [Spike] {
            var resolved: [String: Timestamp] = [:]
            for a in alerts where a.state == .resolved { resolved["\(a.rule)|\(a.scope)|\(a.firingSince.ms)"] = a.at }
            return alerts.filter { $0.state == .firing }.map { a in
                let end = resolved["\(a.rule)|\(a.scope)|\(a.firingSince.ms)"]
                let until = end ?? max(asOf ?? a.firingSince, a.firingSince)
                return Spike(scope: a.scope, firingSince: a.firingSince, shiftStart: a.shiftStart, resolvedAt: end, observedRate: a.observedRate,
                             baselineRate: a.baselineRate, hours: Double(until.ms - a.firingSince.ms) / 3_600_000)
            }
        }

        /// The alert's time, when the shift began by the detector's estimate, and how long it fired (an alert resolves
        /// once the rate is shown back at the baseline, which takes longer than the outage where attempts are few).
        var sentence: String {
            let began = shiftStart.map { " (the shift began about \(Self.minute($0)))" } ?? ""
            let span = resolvedAt == nil ? "still firing after \(DetectionReach.duration(hours))" : "resolved \(DetectionReach.duration(hours)) later"
            return "\(scope), raised \(Self.minute(firingSince))\(began), \(span): failure rate \(Format.percent(observedRate)) against a baseline of "
                + Format.percent(baselineRate)
        }

        /// `2025-07-14 06:20 UTC`: event time to the minute, as a person reads it.
        static func minute(_ t: Timestamp) -> String {
            let text = t.description
            return String(text.prefix(10)) + " " + String(text.dropFirst(11).prefix(5)) + " UTC"
        }
    }

    /// Who can fix a failure reason, as events.md's owner column says first: `engineering`, `dunning`,
    /// `customer` or `risk team`.
    public static func ownerGroup(_ r: FailureReason) -> String {
        String(r.owner.prefix { $0 != ":" && $0 != "," })
    }

    public var markdown: String {
        var out = "## Executive narrative\n\n"
        if let insufficient { out += insufficient + "\n\n" }
        for f in findings { out += "**\(f.title).** \(f.text)\n\n" }
        if !recommendations.isEmpty {
            out += "### Recommendations\n\n" + recommendations.map { "- \($0)" }.joined(separator: "\n") + "\n"
        }
        return out
    }
}
