import Config
import Events
import Foundation
import Marts
import Simulation
import Testing
import TestSupport
import Evaluation

/// The risk model against the simulator's ground truth, small enough for a test: it must rank the customers
/// who churn in the next 60 days well above those who do not, in both scenarios the issue names.
@Suite struct RiskEvaluationTests {
    static func evaluate(_ scenario: String, seed: UInt64) throws -> RiskEvaluation {
        let config = try ConfigLoader.load(scenario: scenario, configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let params = SimulationParameters(config: config, seed: seed, customers: 6000, start: start, end: start.addingMonths(18))
        var shares: [Double] = []
        let r = try RiskEvaluation.run(parameters: params, cutoff: params.end.adding(days: -60), progress: { shares.append($0) })
        // Its progress: once per simulated day of the 18 months (548 days), never backwards, to the end.
        #expect(shares.count >= 540 && shares.count <= 548)
        #expect(zip(shares, shares.dropFirst()).allSatisfy { $0 < $1 })
        #expect((shares.first ?? 1) < 0.01 && (shares.last ?? 0) > 0.99)
        return r
    }

    @Test(arguments: ["baseline", "rescue-mission"])
    func churnersScoreHigherThanTheRest(_ scenario: String) throws {
        let r = try Self.evaluate(scenario, seed: 11)
        #expect(r.churners >= 50, "too few churners to judge: \(r.report)")
        // The full-size figures (60,000 customers) are 0.81-0.84; a few hundred churners leave some noise.
        #expect((r.auc ?? 0) > 0.74, "\(scenario): \(r.report)")
        #expect((r.lift ?? 0) > 3, "\(scenario): \(r.report)")
        // Every strong reason is more common among churners than the base rate says.
        for code in ["past_due", "cancel_intent", "inactive"] {
            guard let v = r.reasons[code], v.customers >= 10 else { continue }
            #expect(Double(v.churned) / Double(v.customers) > 2 * r.baseRate, "\(code): \(v) in \(r.report)")
        }
    }
}

/// Too small a business to judge the model: AUC and the top 5% are undefined, said in words (they printed as
/// "ROC AUC 0.000; top 5% precision -nan%").
@Suite struct RiskEvaluationUndefinedTests {
    @Test func withoutChurnersTheFiguresAreUndefinedAndSaidSo() throws {
        let config = try ConfigLoader.load(scenario: "baseline", configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        let params = SimulationParameters(config: config, seed: 11, customers: 5, start: start, end: start.addingMonths(3))
        let r = try RiskEvaluation.run(parameters: params, cutoff: params.end.adding(days: -60))
        #expect(r.churners == 0 || r.churners == r.customers, "this seed must give a run AUC cannot judge: \(r.report)")
        #expect(r.auc == nil && r.undefined != nil, "\(r.report)")
        #expect(r.report.contains("ROC AUC undefined") && !r.report.contains("nan"), "\(r.report)")
        // (`EvaluateRiskCommandTests`: `evaluate-risk --require` fails on such a run.)
    }
}

/// The simulator's payment-failure precursor: failures concentrate on some customers, so a customer whose
/// first attempt failed once is likelier than others to see the next invoice's first attempt fail too.
@Suite struct FailurePrecursorTests {
    @Test func aFailedFirstAttemptMakesTheNextOneLikelierToFail() throws {
        let config = try ConfigLoader.load(scenario: "baseline", configDir: repoConfig)
        let start = Timestamp(year: 2024, month: 1, day: 1)
        var world = try World(SimulationParameters(config: config, seed: 5, customers: 4000, start: start, end: start.addingMonths(18)))
        var failedBefore = Set<String>(), seen = Set<String>()
        var after = (attempts: 0, failed: 0), clean = (attempts: 0, failed: 0)
        while let e = world.next() {
            let failed: Bool
            switch e.payload {
            case let .paymentSucceeded(_, _, _, _, _, attempt) where attempt == 1: failed = false
            case let .paymentFailed(_, _, _, _, _, attempt, _, _) where attempt == 1: failed = true
            default: continue
            }
            if seen.contains(e.customerID) {
                if failedBefore.contains(e.customerID) {
                    after.attempts += 1
                    after.failed += failed ? 1 : 0
                } else {
                    clean.attempts += 1
                    clean.failed += failed ? 1 : 0
                }
            }
            seen.insert(e.customerID)
            if failed { failedBefore.insert(e.customerID) }
        }
        let rateAfter = Double(after.failed) / Double(after.attempts), rateClean = Double(clean.failed) / Double(clean.attempts)
        #expect(after.attempts > 200)
        #expect(rateAfter > 2 * rateClean, "after a failure \(rateAfter), otherwise \(rateClean)")
    }
}
