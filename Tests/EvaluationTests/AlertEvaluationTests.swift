import Config
import Events
import Foundation
import Marts
@testable import Simulation
import Testing
import TestSupport
@testable import Evaluation

/// `evaluate-alerts`: incidents matched to the scopes they touch, and an oracle computed from the true rates.
@Suite struct AlertEvaluationTests {
    @Test func scopesTouchTheIncidentsTheyCover() {
        let w = IncidentWindow(name: "x", start: Timestamp(ms: 0), end: Timestamp(ms: 3_600_000), plan: .premium, reason: .gatewayTimeout, failureRate: 0.5)
        for scope in ["overall", "plan:premium", "reason:gateway_timeout", "plan:premium/reason:gateway_timeout"] {
            #expect(IncidentCoverage.touches(scope, w), "\(scope)")
        }
        for scope in ["plan:standard", "reason:expired_card", "plan:standard/reason:gateway_timeout", "plan:premium/reason:expired_card"] {
            #expect(!IncidentCoverage.touches(scope, w), "\(scope)")
        }
        var anyPlan = w
        anyPlan.plan = nil
        #expect(IncidentCoverage.touches("plan:standard/reason:gateway_timeout", anyPlan))
        #expect(IncidentCoverage.parts("plan:premium/reason:gateway_timeout") == ("premium", "gateway_timeout"))
    }

    @Test func everyIncidentGetsAnOracleFromItsTrueRatesAndItsOwnWindow() throws {
        var params = SimulationParameters(config: try ConfigLoader.load(scenario: "incident-shapes", configDir: repoConfig), seed: 42, customers: 10_000,
                                          start: Timestamp(year: 2024, month: 1, day: 1), end: Timestamp(year: 2024, month: 1, day: 1).addingMonths(24))
        params.omitEngagement = true
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        var shares: [Double] = []
        let result = AlertEvaluation.run(world: try World(params), rules: rules, start: params.start, end: params.end) { shares.append($0) }
        // Its progress: once per simulated day (731 in these 24 months), never backwards, to the end.
        #expect(shares.count >= 700 && shares.count <= 731)
        #expect(zip(shares, shares.dropFirst()).allSatisfy { $0 < $1 })
        #expect((shares.first ?? 1) < 0.01 && (shares.last ?? 0) > 0.99 && shares.allSatisfy { (0...1).contains($0) })
        #expect(result.detections.map(\.incident.name) == ["short-sharp-processor", "long-mild-velocity", "standard-do-not-honor"])
        for d in result.detections {
            guard let oracle = d.oracle else { continue }
            // The true outage rate on top of the scope's baseline, and a delay of at least one attempt.
            #expect(oracle.rate > oracle.baseline && oracle.rate <= 1)
            if d.incident.plan == nil || oracle.scope.contains("plan:") {
                // Every attempt of the scope is in the outage: failing at its rate on top of the baseline.
                #expect(abs(oracle.rate - (oracle.baseline + (1 - oracle.baseline) * d.incident.failureRate)) < 1e-9)
            }
            #expect(oracle.attempts >= 1 && oracle.delayMinutes > 0)
            #expect(IncidentCoverage.touches(oracle.scope, d.incident))
        }
        // The oracle on the run's own attempts decides inside the window, in a scope the incident touches.
        for d in result.detections {
            guard let r = d.realized else { continue }
            #expect(r.delayMinutes >= 0 && r.delayMinutes <= d.incident.durationMinutes && r.attempts >= 1)
            #expect(IncidentCoverage.touches(r.scope, d.incident))
        }
        #expect(result.detections.contains { $0.realized != nil })
        // The limit of any test held to one false alert a month (the whole budget on one scope) is never slower than
        // the oracle that shares the budget among every scope and CUSUM as the detector does.
        for d in result.detections {
            guard let r = d.realized else { continue }
            let bound = try #require(d.bound, "\(d.incident.name): the oracle decides, the bound must too")
            #expect(bound.delayMinutes <= r.delayMinutes && bound.attempts <= r.attempts && bound.delayMinutes >= 0)
            #expect(IncidentCoverage.touches(bound.scope, d.incident))
        }
        #expect(result.report.contains("with the whole false-alarm budget on one scope"))
        // Every detection is an alert about its incident, never before it began.
        for d in result.detections { if let a = d.alert { #expect(a.at >= d.incident.start && IncidentCoverage.touches(a.scope, d.incident)) } }
        // How long after its end the incident's alerts resolved: the latest resolution, in the run's alerts, of a
        // scope the incident touches, that names a firing at or after the incident's start; and at least one firing.
        #expect(result.detections.contains { $0.alert != nil })
        for d in result.detections {
            guard let a = d.alert else { #expect(d.firings == 0 && d.resolvedAfterEndMinutes == nil); continue }
            #expect(d.firings >= 1)
            let after = try #require(d.resolvedAfterEndMinutes, "\(d.incident.name): every alert of this run resolves before its end")
            let at = d.incident.end.ms + Int64((after * 60_000).rounded())
            let resolution = result.allAlerts.first { $0.state == .resolved && $0.at.ms == at && IncidentCoverage.touches($0.scope, d.incident) }
            #expect(resolution.map { $0.firingSince >= a.at } == true, "\(d.incident.name): no resolution at \(at)")
            #expect(!result.allAlerts.contains { $0.state == .resolved && $0.at.ms > at && $0.firingSince >= a.at
                && IncidentCoverage.touches($0.scope, d.incident) && $0.firingSince.ms <= d.incident.end.ms + 10 * 60_000 })
        }
        #expect(result.report.contains("h after the incident's end"))
        #expect(result.months > 23 && result.months < 25)
    }

    /// Every run is judged against the oracle on its own attempts; over several seeds the goal must hold in each.
    @Test func theGoalHoldsAgainstTheOracleOnTheRunsOwnAttemptsInEverySeed() {
        let w = IncidentWindow(name: "x", start: Timestamp(ms: 0), end: Timestamp(ms: 600 * 60_000), plan: nil, reason: .doNotHonor, failureRate: 0.5)
        func run(_ delay: Double?, realized: Double?) -> AlertEvaluation.Detection {
            let alert = delay.map { Alert(rule: "r", scope: "overall", state: .firing, at: Timestamp(ms: Int64($0 * 60_000)), firingSince: Timestamp(ms: 0),
                                          observedRate: 0.5, baselineRate: 0.1, attempts: 1, failures: 1, windowMinutes: 0) }
            let o = AlertEvaluation.Oracle(scope: "overall", baseline: 0.1, rate: 0.5, attemptsPerMinute: 1, attempts: 15)
            return AlertEvaluation.Detection(incident: w, alert: alert, oracle: o,
                                             realized: realized.map { AlertEvaluation.RealizedOracle(scope: "overall", delayMinutes: $0, attempts: 9) })
        }
        #expect(run(31, realized: 15).meetsGoal(step: 1) && !run(32, realized: 15).meetsGoal(step: 1))
        #expect(!run(nil, realized: 15).meetsGoal(step: 1))
        // When the oracle itself cannot decide on the run's attempts there is no goal.
        #expect(run(nil, realized: nil).meetsGoal(step: 1) && !run(nil, realized: nil).detectable)
        let four = SeededDetection([run(38, realized: 20), run(5, realized: 4), run(32, realized: 16), run(21, realized: 12)])
        #expect(four.meanDelay == 24 && four.meanOracle == 15 && four.realizedDelays == [20, 4, 16, 12])
        #expect(four.meetsGoal(step: 1))
        #expect(!SeededDetection([run(5, realized: 4), run(38, realized: 15)]).meetsGoal(step: 1))
        #expect(SeededDetection([run(5, realized: 4), run(nil, realized: nil)]).meetsGoal(step: 1))
        // Grouped by incident across runs.
        var other = w
        other.name = "y"
        let combined = SeededDetection.combine([[run(4, realized: 2), AlertEvaluation.Detection(incident: other, alert: nil, oracle: nil)],
                                                [AlertEvaluation.Detection(incident: other, alert: nil, oracle: nil), run(6, realized: 4)]])
        #expect(combined.map(\.incident.name) == ["x", "y"] && combined[0].meanDelay == 5 && combined[0].realizedDelays == [2, 4])
    }

    /// The oracle on a run's attempts counts only the incident plan's attempts, so it weighs them against their own
    /// baseline: in a scope wider than the plan, the plan's rate there, not the whole scope's (a plan failing more
    /// often than the others made it decide sooner than any valid test).
    @Test func theOracleWeighsThePlansAttemptsAgainstThePlansBaseline() {
        typealias O = AlertEvaluation.RealizedOracle
        let scope = (n: 1000, f: 2), inPlan = (n: 400, f: 2)
        // A plan's outage in a reason's scope (all plans): the plan's attempts there, not the scope's.
        #expect(O.nullRate(planOnly: false, before: scope, beforeInPlan: inPlan) == 0.005)
        // In its plan × reason scope, or for an outage of every plan: the scope's own.
        #expect(O.nullRate(planOnly: true, before: inPlan, beforeInPlan: inPlan) == 0.005)
        #expect(O.nullRate(planOnly: true, before: scope, beforeInPlan: inPlan) == 0.002)
        // No failure seen: half a failure; no attempt of the plan seen: no test.
        #expect(O.nullRate(planOnly: false, before: scope, beforeInPlan: (400, 0)) == 0.5 / 400)
        #expect(O.nullRate(planOnly: false, before: scope, beforeInPlan: nil) == nil)
        #expect(O.nullRate(planOnly: false, before: scope, beforeInPlan: (0, 0)) == nil)
    }

    /// The oracle knows the scope's true rate: it counts the attempts of the 91 days before the incident outside every
    /// incident's window, not one week's (at 10,000 customers a week held 1-2 failures of a plan × reason failing 0.6-0.9%
    /// of the time, so the oracle's baseline was half or twice the true one by chance).
    @Test func theOraclesBaselineIsTheQuarterBeforeItOutsideEveryIncident() {
        let start = Timestamp(year: 2025, month: 6, day: 1)
        let w = IncidentWindow(name: "x", start: start, end: start.adding(ms: 12 * 3_600_000), plan: .standard, reason: .doNotHonor, failureRate: 0.6)
        let day = Timestamp.millisecondsPerDay
        func counts(_ msBefore: Int64, inAnIncident: Bool = false) -> Bool {
            AlertEvaluation.countsTowardsBaseline(Timestamp(ms: start.ms - msBefore), of: w, inAnIncident: inAnIncident)
        }
        #expect(counts(1) && counts(8 * day) && counts(60 * day) && counts(91 * day))
        #expect(!counts(91 * day + 1) && !counts(200 * day))
        // Not the incident itself, nor another incident's window.
        #expect(!counts(0) && !counts(-60_000))
        #expect(!counts(30 * day, inAnIncident: true))
    }

    /// Many incident-runs against a target delay: counts within it, nearest-rank quantiles with a missed incident
    /// slower than any, and the same for the limit of any test.
    @Test func aDelaySummaryCountsTheIncidentRunsWithinTheTarget() {
        let w = IncidentWindow(name: "x", start: Timestamp(ms: 0), end: Timestamp(ms: 720 * 60_000), plan: .standard, reason: .doNotHonor, failureRate: 0.6)
        func run(_ delay: Double?, bound: Double?) -> AlertEvaluation.Detection {
            let alert = delay.map { Alert(rule: "r", scope: "plan:standard", state: .firing, at: Timestamp(ms: Int64($0 * 60_000)), firingSince: Timestamp(ms: 0),
                                          observedRate: 0.6, baselineRate: 0.01, attempts: 3, failures: 3, windowMinutes: 0) }
            return AlertEvaluation.Detection(incident: w, alert: alert, oracle: nil,
                                             bound: bound.map { AlertEvaluation.RealizedOracle(scope: "plan:standard", delayMinutes: $0, attempts: 2) })
        }
        let runs = [run(10, bound: 5), run(50, bound: 20), run(nil, bound: 300), run(200, bound: 90), run(90, bound: nil), run(120, bound: 120)]
        let s = DelaySummary(runs, targetMinutes: 120)
        #expect(s.runs == 6 && s.detected == 5 && s.within == 4 && s.boundWithin == 4)
        // Sorted: 10, 50, 90, 120, 200, missed. The median is the 3rd, the 90th percentile the 6th (missed).
        #expect(s.median == 90 && s.p90 == nil)
        // The bounds sorted: 5, 20, 90, 120, 300, none.
        #expect(s.boundMedian == 90)
        #expect(DelaySummary(Array(runs.prefix(2)), targetMinutes: 30).within == 1)
        #expect(DelaySummary([], targetMinutes: 120).median == nil)
        #expect(DelaySummary.quantile([3, nil, 1, 2], 0.5) == 2 && DelaySummary.quantile([3, nil, 1, 2], 0.75) == 3 && DelaySummary.quantile([3, nil, 1, 2], 1) == nil)
        let line = s.line(maxFalsePerMonth: 1)
        #expect(line.hasPrefix("6 incident-runs; detected within 120 min: 4 (67%), at all: 5; delay median 90 min, 90th percentile not caught;"), "\(line)")
        #expect(line.hasSuffix("any test within 1 false alert(s) a month: within 120 min 4 (67%), median 90 min"), "\(line)")
    }

    /// `plan-outages`: the same 12-hour outage of 60% of one plan's attempts, eight times, at the volume the goal
    /// speaks of (30,000 customers, about 95 first attempts of the plan a day), each matched to an alert.
    @Test func planOutagesRepeatOneOutageAtTheGoalsVolume() throws {
        let config = try ConfigLoader.load(scenario: "plan-outages", configDir: repoConfig)
        var params = SimulationParameters(config: config, seed: 42, customers: 30_000,
                                          start: Timestamp(year: 2024, month: 1, day: 1), end: Timestamp(year: 2024, month: 1, day: 1).addingMonths(24))
        params.omitEngagement = true
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let result = AlertEvaluation.run(world: try World(params), rules: rules, start: params.start, end: params.end) { _ in }
        #expect(result.detections.count == 8)
        for d in result.detections {
            #expect(d.incident.plan == .standard && d.incident.failureRate == 0.6 && d.incident.durationMinutes == 720)
            #expect(d.incident.end <= params.end && d.incident.start >= params.end.adding(days: -62))
            let oracle = try #require(d.oracle, "\(d.incident.name)")
            // Its fastest scope holds the plan's attempts: about 95 a day (first attempts).
            #expect(oracle.attemptsPerMinute * 1440 > 60 && oracle.attemptsPerMinute * 1440 < 130, "\(d.incident.name): \(oracle.attemptsPerMinute * 1440) a day")
        }
        #expect(Set(result.detections.map(\.incident.reason)) == [.doNotHonor, .processingError])
        let summary = DelaySummary(result.detections, targetMinutes: 120)
        #expect(summary.runs == 8 && summary.detected == result.detections.count { $0.alert != nil })
        #expect(summary.within == result.detections.count { ($0.delayMinutes ?? .infinity) <= 120 })
    }

    /// The oracle on a run's attempts is a sequential probability ratio test: it decides at the attempt where the
    /// summed log-likelihood ratio first reaches the threshold, and never when the failures do not come.
    @Test func theOracleOnARunsAttemptsDecidesWhereItsEvidenceReachesTheThreshold() {
        let (p0, p1) = (0.01, 0.5)
        let perFailure = log(p1 / p0), perSuccess = log((1 - p1) / (1 - p0))  // +3.91, -0.68
        // Failure, success, failure, failure: the sum passes 3.91, 3.23, 7.14, 11.05.
        let run: [(ms: Int64, failed: Bool)] = [(1000, true), (2000, false), (3000, true), (4000, true), (5000, true)]
        #expect(RealizedOracleCase.decide(run, p0, p1, 7) == .init(ms: 3000, attempts: 3))
        // A threshold the third attempt just reaches (a hair below its sum, whatever the order of the additions).
        #expect(RealizedOracleCase.decide(run, p0, p1, 2 * perFailure + perSuccess - 1e-9) == .init(ms: 3000, attempts: 3))
        #expect(RealizedOracleCase.decide(run, p0, p1, 11) == .init(ms: 4000, attempts: 4))
        // Successes only: the evidence only falls.
        #expect(RealizedOracleCase.decide((0..<1000).map { (Int64($0), false) }, p0, p1, 1) == nil)
        // Too few failures for the threshold: no decision within the attempts seen.
        #expect(RealizedOracleCase.decide(run, p0, p1, 4 * perFailure + 0.01) == nil)
    }
}

/// `RealizedOracle.decision` with an equatable result.
enum RealizedOracleCase {
    struct Decision: Equatable { var ms: Int64; var attempts: Int }
    static func decide(_ a: [(ms: Int64, failed: Bool)], _ p0: Double, _ p1: Double, _ threshold: Double) -> Decision? {
        AlertEvaluation.RealizedOracle.decision(a, p0: p0, p1: p1, threshold: threshold).map { Decision(ms: $0.ms, attempts: $0.attempts) }
    }
}
