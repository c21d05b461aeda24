import Events
import Foundation
import Marts
import Simulation

/// Scores the risk model against ground truth: every paying customer is scored at a cut-off time from the
/// events up to it, then labelled by whether it actually churns (either kind) in the following 60 days.
public struct RiskEvaluation: Sendable {
    public var customers: Int
    public var churners: Int
    /// The probability that a churner scores above a customer who stays; nil when the scored customers are not
    /// both (AUC is undefined then: too few customers, or a cut-off too early).
    public var auc: Double?
    /// The share of churners among the top 5% by score; nil when no customer was scored.
    public var top5Precision: Double?
    public var baseRate: Double
    /// How many times random the top 5% is; nil when either figure is undefined.
    public var lift: Double? {
        guard let top5Precision, baseRate > 0 else { return nil }
        return top5Precision / baseRate
    }
    /// Why the goals cannot be judged on this run, or nil when they can.
    public var undefined: String? {
        if customers == 0 { return "no paying customer to score at the cut-off" }
        if churners == 0 { return "none of the \(customers) scored customers churns within 60 days, so AUC is undefined" }
        if churners == customers { return "every scored customer churns within 60 days, so AUC is undefined" }
        return nil
    }
    /// Per reason code: customers carrying it and how many of them churned.
    public var reasons: [String: (churned: Int, customers: Int)]

    /// `progress` is told the share of the simulated time done, in 0...1, once per simulated day.
    public static func run(parameters: SimulationParameters, cutoff: Timestamp, horizonDays: Int64 = 60,
                           signals: ((String, CustomerState, Cancellation?) -> Void)? = nil,
                           progress: (Double) -> Void = { _ in }) throws -> RiskEvaluation {
        var params = parameters
        params.end = cutoff.adding(days: horizonDays)
        var world = try World(params)
        var state = MartState()
        var days = SimulatedDays(start: params.start, end: params.end)
        while let e = world.next() {
            if e.occurredAt <= cutoff { _ = state.apply(e, valueHash: 0) }
            if let share = days.share(at: e.occurredAt) { progress(share) }
        }
        let horizon = cutoff.adding(days: horizonDays)
        let churnsBy = Dictionary(uniqueKeysWithValues: world.truth.map { t in
            (t.customerID, t.churns.first { $0.at > cutoff && $0.at <= horizon }?.kind)
        })
        var scored: [(score: Int, churned: Bool, id: String)] = []
        var reasonCounts: [String: (pos: Int, all: Int)] = [:]
        for (id, c) in state.customers where c.status == .active || c.status == .pastDue {
            let a = RiskModel.assess(c, asOf: cutoff)
            let kind = churnsBy[id] ?? nil
            let y = kind != nil
            signals?(id, c, kind)
            scored.append((a.score, y, id))
            for r in a.reasons { reasonCounts[r, default: (0, 0)].all += 1; if y { reasonCounts[r, default: (0, 0)].pos += 1 } }
        }

        let positives = scored.filter(\.churned).count, negatives = scored.count - positives
        // AUC: the probability that a churner scores above a non-churner (ties count half).
        var byScore: [Int: (pos: Int, neg: Int)] = [:]
        for (s, y, _) in scored { byScore[s, default: (0, 0)].pos += y ? 1 : 0; byScore[s, default: (0, 0)].neg += y ? 0 : 1 }
        var negBelow = 0.0, pairs = 0.0
        for s in byScore.keys.sorted() {
            let (p, n) = byScore[s]!
            pairs += Double(p) * (negBelow + Double(n) / 2)
            negBelow += Double(n)
        }
        let auc = positives == 0 || negatives == 0 ? nil : pairs / (Double(positives) * Double(negatives))
        // Precision among the top 5% by score (ties broken by customer id, so the figure is reproducible).
        let top = scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }.prefix(max(1, scored.count / 20))
        let precision = scored.isEmpty ? nil : Double(top.filter(\.churned).count) / Double(top.count)
        return RiskEvaluation(customers: scored.count, churners: positives, auc: auc, top5Precision: precision,
                              baseRate: scored.isEmpty ? 0 : Double(positives) / Double(scored.count),
                              reasons: reasonCounts.mapValues { ($0.pos, $0.all) })
    }

    public var report: String {
        var head = String(format: "%d paying customers scored, %d churn within 60 days (base rate %.1f%%): ", customers, churners, baseRate * 100)
        head += auc.map { String(format: "ROC AUC %.3f", $0) } ?? "ROC AUC undefined"
        head += top5Precision.map { String(format: "; top 5%% precision %.1f%%", $0 * 100) } ?? "; top 5% precision undefined"
        head += lift.map { String(format: " (%.1f× random)", $0) } ?? ""
        if let undefined { head += " (\(undefined): simulate more customers or months)" }
        var lines = [head]
        for (r, v) in reasons.sorted(by: { $0.key < $1.key }) {
            lines.append(String(format: "  %-18@ on %5d customers, %5.1f%% of them churned", r as NSString, v.customers,
                                100 * Double(v.churned) / Double(max(v.customers, 1))))
        }
        return lines.joined(separator: "\n")
    }
}
