import Events

/// The at-risk model: an explainable points score from a customer's recent signals, evaluated at the
/// consumer's as-of time (so a replay up to a past time gives that day's scores).
///
/// | code | signal | points |
/// | --- | --- | --- |
/// | `hard_decline` | a hard-declined payment in the last 30 days | 25 |
/// | `payment_failures` | soft-declined payments in the last 30 days | 8 each, at most 24 |
/// | `past_due` | an invoice with a failed payment and no outcome yet | 20 |
/// | `cancel_intent` | a cancel intent in the last 30 days | 25 (a second one: +10) |
/// | `zombie` | paying, but no core-value use in the last 30 days | 15 |
/// | `engagement_drop` | feature use in the last 30 days under half of the customer's own monthly average of the 3 months before | 15 |
/// | `inactive` | paying and no feature use at all in the last 30 days | 10 |
/// | `not_activated` | never reached a core-value feature within 14 days of signup | 5 |
/// | `high_mrr` | MRR at least the premium list price (more to lose) | 5 |
///
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

    public static let highMrrCents: Cents = 14900

    public static func assess(_ c: CustomerState, asOf: Timestamp) -> Assessment {
        let status = c.status
        guard status == .active || status == .pastDue else { return Assessment(score: 0, segment: .low, reasons: []) }
        let day = Timestamp.millisecondsPerDay
        let from = asOf.ms - 30 * day
        var score = 0
        var reasons: [String] = []
        func add(_ points: Int, _ code: String) {
            score += points
            reasons.append(code)
        }
        let recent = c.recentFailures.filter { $0.time > from && $0.time <= asOf.ms }
        if recent.contains(where: \.hard) { add(25, "hard_decline") }
        let soft = recent.filter { !$0.hard }.count
        if soft > 0 { add(min(8 * soft, 24), "payment_failures") }
        if status == .pastDue { add(20, "past_due") }
        let intents = c.recentCancelIntents.filter { $0 > from && $0 <= asOf.ms }.count
        if intents > 0 { add(intents > 1 ? 35 : 25, "cancel_intent") }
        if c.isZombie(asOf: asOf) { add(15, "zombie") }
        let last30 = c.featureEvents30d(asOf: asOf)
        let m = asOf.month.index
        let baseline = Double((1...3).reduce(0) { $0 + Int(c.months[m - Int32($1)]?.featureEvents ?? 0) }) / 3
        if baseline >= 1 {
            // Graded: the further use fell below the customer's own level, the more points (up to 30).
            let drop = max(0, 1 - Double(last30) / baseline)
            if drop >= 0.3 { add(Int((drop * 30).rounded()), "engagement_drop") }
        }
        if last30 == 0 { add(15, "inactive") }
        if c.ttvMilliseconds == nil { add(15, "not_activated") }
        if c.currentMrr >= highMrrCents { add(5, "high_mrr") }
        score = min(score, 100)
        return Assessment(score: score, segment: Segment(score: score), reasons: reasons)
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
