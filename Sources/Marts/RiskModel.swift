import Events

/// The at-risk model: an explainable points score from a customer's recent signals, evaluated at the
/// consumer's as-of time (so a replay up to a past time gives that day's scores).
///
/// | code | signal | points |
/// | --- | --- | --- |
/// | `past_due` | an invoice with a failed payment and no outcome yet | 34 |
/// | `hard_decline` | past due, and the latest failure was a hard decline (the card must be replaced) | 22 |
/// | `cancel_intent` | a cancel intent in the last 30 days | 28 |
/// | `payment_failures` | a failed payment attempt in the last 90 days | 2 |
/// | `inactive` | no feature use at all in the last 30 days | 18 |
/// | `light_use` | 1-7 feature events in the last 30 days | 12 |
/// | `moderate_use` | 8-15 feature events in the last 30 days | 8 |
/// | `quiet_2_weeks` | no feature use in the last 14 days | 5 |
/// | `zombie` | paying, but no core-value use in the last 30 days | 4 |
/// | `low_lifetime_use` | under 4 feature events a month on average, from signup to 4 months before the last 30 days | 4 |
/// | `engagement_drop` | use in the last 30 days under half the customer's own monthly average of the 3 months before | 3 |
/// | `not_activated` | never reached a core-value feature within 14 days of signup | 2 |
///
/// The points are ten times the coefficients of a logistic regression of "churns within 60 days" on these
/// signals, fitted on the simulated `baseline` business (seed 1, 60,000 customers; the script is
/// `Benchmarks/risk/fit_points.py`), rounded, so 10 points multiply the odds of churning by e. The fit
/// gives `payment_failures` (1), `engagement_drop` and `not_activated` (0) almost no weight beyond the other
/// signals; they keep 2-3 points so that the score follows recent failures, the customer's own baseline and
/// onboarding as documented. Plan and MRR carry no information beyond use in the fit; they weigh the result
/// instead, as MRR at risk.
/// The score is the sum, capped at 100. Only `active` and `past_due` customers are scored (others: 0).
/// Segments: `low` < 25 ≤ `medium` < 50 ≤ `high` < 75 ≤ `critical`.
public enum RiskModel {
    public enum Segment: String, Sendable, CaseIterable, Comparable {
        case low, medium, high, critical
        public static func < (a: Segment, b: Segment) -> Bool { a.order < b.order }
        var order: Int { Segment.allCases.firstIndex(of: self)! }
        public init(score: Int) {
            self = score >= 75 ? .critical : score >= 50 ? .high : score >= 25 ? .medium : .low
        }
    }

    public struct Assessment: Sendable, Equatable {
        public var score: Int
        public var segment: Segment
        public var reasons: [String]
    }


    /// The measurements the score is made of, at `asOf` (also written by `evaluate-risk --signals-out`).
    public struct Signals: Sendable, Equatable {
        public var hardDeclines30d = 0
        public var softFailures30d = 0
        public var failures90d = 0
        public var pastDue = false
        /// Past due, and the latest failed attempt was a hard decline.
        public var pastDueHard = false
        public var cancelIntents30d = 0
        public var zombie = false
        public var featureEvents30d = 0
        public var featureEvents14d = 0
        /// Mean monthly feature events of the three calendar months before the month of (as-of − 30 days):
        /// no overlap with the last 30 days.
        public var priorMonthly = 0.0
        /// Mean monthly feature events over the complete months from signup to 4 months before that month.
        public var lifetimeMonthly = 0.0
        public var activated = false
        public var mrrCents: Cents = 0
        public var tenureDays = 0.0
        public var daysSinceActive = 0.0
        /// Lifetime invoices, and those with at least one failed attempt.
        public var invoices = 0
        public var failedInvoices = 0

        public static let csvHeader = "hard30,soft30,fail90,past_due,past_due_hard,intents30,zombie,events30,events14,prior,lifetime,"
            + "activated,mrr,tenure_days,days_since_active,invoices,failed_invoices"
        public var csv: String {
            func b(_ v: Bool) -> String { v ? "1" : "0" }
            let fields: [String] = [
                "\(hardDeclines30d)", "\(softFailures30d)", "\(failures90d)", b(pastDue), b(pastDueHard), "\(cancelIntents30d)", b(zombie),
                "\(featureEvents30d)", "\(featureEvents14d)", "\(priorMonthly)", "\(lifetimeMonthly)", b(activated), "\(mrrCents)",
                "\(tenureDays)", "\(daysSinceActive)", "\(invoices)", "\(failedInvoices)",
            ]
            return fields.joined(separator: ",")
        }
    }

    /// The signals at `asOf`. The score needs only some of them; `forAnalysis` also measures the rest (use in
    /// the last 14 days, tenure, invoice history), which the per-event assessment does not pay for.
    public static func signals(_ c: CustomerState, asOf: Timestamp, forAnalysis: Bool = false) -> Signals {
        let day = Timestamp.millisecondsPerDay
        let from30 = asOf.ms - 30 * day, from90 = asOf.ms - 90 * day
        var s = Signals()
        for f in c.recentFailures where f.time <= asOf.ms {
            if f.time > from90 { s.failures90d += 1 }
            if f.time > from30 { if f.hard { s.hardDeclines30d += 1 } else { s.softFailures30d += 1 } }
        }
        s.pastDue = c.status == .pastDue
        s.pastDueHard = s.pastDue && c.lastFailure?.reason.declineType == .hard
        s.cancelIntents30d = c.recentCancelIntents.reduce(0) { $0 + ($1 > from30 && $1 <= asOf.ms ? 1 : 0) }
        s.zombie = c.isZombie(asOf: asOf)
        s.featureEvents30d = c.featureEvents30d(asOf: asOf)
        let pm = Timestamp(ms: from30).month.index
        s.priorMonthly = Double((1...3).reduce(0) { $0 + Int(c.months[pm - Int32($1)]?.featureEvents ?? 0) }) / 3
        if let signup = c.signedUpAt {
            let first = signup.month.index + 1, last = pm - 4
            if first <= last {
                let total = (first...last).reduce(0) { $0 + Int(c.months[$1]?.featureEvents ?? 0) }
                s.lifetimeMonthly = Double(total) / Double(last - first + 1)
            }
        }
        s.activated = c.ttvMilliseconds != nil
        s.mrrCents = c.currentMrr
        s.tenureDays = c.signedUpAt.map { Double(asOf.ms - $0.ms) / Double(day) } ?? 0
        s.daysSinceActive = c.lastActive.map { Double(asOf.ms - $0.ms) / Double(day) } ?? s.tenureDays
        if forAnalysis {
            s.featureEvents14d = c.recentFeatureTimes.reduce(0) { $0 + ($1 > asOf.ms - 14 * day && $1 <= asOf.ms ? 1 : 0) }
            s.invoices = c.invoices.count
            s.failedInvoices = c.invoices.values.reduce(0) { $0 + ($1.failed ? 1 : 0) }
        }
        return s
    }

    /// The earliest time after `asOf` at which the assessment may change without a new event of the
    /// customer: a failure, cancel intent or feature use leaving its window, the 14-day quiet mark, or the
    /// monthly baselines moving on. Nil for customers who are not scored.
    public static func nextChange(_ c: CustomerState, asOf: Timestamp) -> Int64? {
        let status = c.status
        guard status == .active || status == .pastDue else { return nil }
        let day = Timestamp.millisecondsPerDay
        var next = Int64.max
        func consider(_ t: Int64) { if t > asOf.ms && t < next { next = t } }
        for f in c.recentFailures { consider(f.time + 90 * day) }
        for t in c.recentCancelIntents { consider(t + 30 * day) }
        for t in c.recentFeatureTimes { consider(t + 30 * day) }
        if let t = c.lastActive { consider(t.ms + 14 * day) }
        if let t = c.lastCoreUse { consider(t.ms + 30 * day) }
        // The prior and lifetime averages move when as-of − 30 days enters a new month.
        consider(Timestamp(ms: asOf.ms - 30 * day).month.next.start.ms + 30 * day)
        return next
    }

    public static func assess(_ c: CustomerState, asOf: Timestamp) -> Assessment {
        var score = 0
        var reasons: [String] = []
        guard scored(c) else { return Assessment(score: 0, segment: .low, reasons: []) }
        points(signals(c, asOf: asOf)) { points, code in
            score += points
            reasons.append(code)
        }
        score = min(score, 100)
        return Assessment(score: score, segment: Segment(score: score), reasons: reasons)
    }

    /// The segment `assess` gives, without collecting its reasons (no allocation): what the consumer checks
    /// after every event, building the full assessment only when the segment changed.
    public static func segment(_ c: CustomerState, asOf: Timestamp) -> Segment {
        guard scored(c) else { return .low }
        var score = 0
        points(signals(c, asOf: asOf)) { points, _ in score += points }
        return Segment(score: min(score, 100))
    }

    /// Only active and past-due subscriptions are scored.
    private static func scored(_ c: CustomerState) -> Bool { c.status == .active || c.status == .pastDue }

    /// The points table: calls `add` with each signal's points and reason code.
    @inline(__always) private static func points(_ s: Signals, _ add: (Int, String) -> Void) {
        if s.pastDue {
            add(34, "past_due")
            if s.pastDueHard { add(22, "hard_decline") }
        }
        if s.cancelIntents30d > 0 { add(28, "cancel_intent") }
        if s.failures90d > 0 { add(2, "payment_failures") }
        switch s.featureEvents30d {
        case 0: add(18, "inactive")
        case 1..<8: add(12, "light_use")
        case 8..<16: add(8, "moderate_use")
        default: break
        }
        if s.daysSinceActive >= 14 { add(5, "quiet_2_weeks") }
        if s.zombie { add(4, "zombie") }
        if s.lifetimeMonthly < 4 { add(4, "low_lifetime_use") }
        if s.priorMonthly >= 2 && Double(s.featureEvents30d) < 0.5 * s.priorMonthly { add(3, "engagement_drop") }
        if !s.activated { add(2, "not_activated") }
    }
}

/// A record of the `customer-risk` changelog: a customer whose segment changed (key: customer id).
public struct RiskChange: Sendable, Equatable {
    public var customerID: String
    public var previous: RiskModel.Segment
    public var assessment: RiskModel.Assessment
    public var mrrCents: Cents
    public var asOf: Timestamp

    /// `{"customer_id":…,"risk_score":…,"risk_segment":…,"previous_segment":…,"risk_reasons":[…],"mrr_cents":…,"as_of":…}`
    public var json: String {
        var w = EventEncoder.Writer(out: [])
        w.raw("{\"customer_id\":")
        w.string(customerID)
        w.raw(",\"risk_score\":")
        w.appendInt(Int64(assessment.score))
        w.raw(",\"risk_segment\":\"" + assessment.segment.rawValue + "\",\"previous_segment\":\"" + previous.rawValue + "\",\"risk_reasons\":[")
        for (i, r) in assessment.reasons.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(r)
        }
        w.raw("],\"mrr_cents\":")
        w.appendInt(mrrCents)
        w.raw(",\"as_of\":\"" + asOf.description + "\"}")
        return String(decoding: w.out, as: UTF8.self)
    }
}
