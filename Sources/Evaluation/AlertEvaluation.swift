import Events
import Foundation
import Marts
import Simulation

/// How far a simulation is, for progress: the share of its time span done, once per simulated day.
struct SimulatedDays {
    let start: Int64
    let span: Double
    private var day = Int64.min

    init(start: Timestamp, end: Timestamp) {
        self.start = start.ms
        span = Double(max(1, end.ms - start.ms))
    }

    /// The share of the span done (0...1) when `t` is on a day after the last one asked about, else nil.
    mutating func share(at t: Timestamp) -> Double? {
        guard t.ms / Timestamp.millisecondsPerDay != day else { return nil }
        day = t.ms / Timestamp.millisecondsPerDay
        return min(1, max(0, Double(t.ms - start) / span))
    }
}

/// Scores alerting against a scenario's ground truth: detection delay per injected incident next to an oracle's,
/// and false alerts.
public struct AlertEvaluation: Sendable {
    public struct Detection: Sendable {
        public var incident: IncidentWindow
        public var alert: Alert?
        public var delayMinutes: Double? { alert.map { Double($0.at.ms - incident.start.ms) / 60_000 } }
        /// The oracle's expected delay: a sequential test that knows the incident's true rates, in the watched
        /// scope where it is fastest. nil when no watched scope had attempts in the window.
        public var oracle: Oracle?
        /// The same oracle test run on this run's own attempts (see `RealizedOracle`), in the watched scope where it
        /// decides first; nil when it decides in none within the window.
        public var realized: RealizedOracle?
        /// The limit of any test held to the goal's false-alarm rate: the oracle on this run's attempts with the whole
        /// business's budget (`wholeBudget` false alerts a month) spent on that one scope, not shared with any other
        /// scope or CUSUM, and its threshold lowered by the overshoot the detector's thresholds allow for
        /// (`SequentialAlerting.overshoot`); nil when it decides in no scope within the window. A goal faster than
        /// this is beyond any detector that meets the false-alarm goal.
        public var bound: RealizedOracle?
        /// Every firing alert about the incident (more than one: it resolved and fired again, or several scopes fired).
        public var firings: Int = 0
        /// Minutes from the incident's end to the last resolution of an alert about it (negative: before the end);
        /// nil when one of them still fires at the run's end or none fired.
        public var resolvedAfterEndMinutes: Double?
        /// Whether the oracle, given this run's attempts, decides within the incident's window.
        public var detectable: Bool { realized != nil }
        /// The goal: detected within 2× the delay of the oracle on this run's attempts plus one evaluation step
        /// (when that oracle decides within the window at all).
        public func meetsGoal(step: Double) -> Bool {
            guard let realized else { return true }
            return (delayMinutes ?? .infinity) <= 2 * realized.delayMinutes + step
        }
    }

    /// The oracle test on a run's own attempts: knowing the start, the baseline p₀ and the outage's rate p₁, it sums
    /// the log-likelihood ratio of each in-scope first attempt from the incident's start (an attempt outside the
    /// incident's plan counts nothing, and p₀ is the baseline of the attempts it counts) and decides when the sum
    /// reaches ln(ARL₀) = ln(1/α) for that false-alarm budget (the detector's thresholds sit lower by the overshoot
    /// they allow for, `SequentialAlerting.threshold(arl0:p0:p1:)`). One run's attempts can hold less evidence than
    /// expected (3 failures of 22 where 6.6 were expected): then no test could decide sooner, and the expected delay
    /// alone would blame the detector.
    public struct RealizedOracle: Sendable {
        public var scope: String
        public var delayMinutes: Double
        public var attempts: Int

        /// The failure rate the attempts it counts (those in the incident's plan) have without the incident: the scope's
        /// baseline, from its attempts in the weeks before outside every incident (`before`, see
        /// `countsTowardsBaseline`), when every attempt of the scope is in the plan (`planOnly`); in a scope wider than
        /// the plan, the baseline of the plan's attempts there (`beforeInPlan`). nil when there were none.
        static func nullRate(planOnly: Bool, before: (n: Int, f: Int), beforeInPlan: (n: Int, f: Int)?) -> Double? {
            guard let counts = planOnly ? before : beforeInPlan, counts.n > 0 else { return nil }
            return AlertEvaluation.rate(counts)
        }

        /// The sequential probability ratio test on attempts in time order: the time of the attempt at which the
        /// summed log-likelihood ratio of p₁ against p₀ first reaches `threshold`, and how many attempts that took;
        /// nil when it never does.
        static func decision(_ attempts: [(ms: Int64, failed: Bool)], p0: Double, p1: Double, threshold: Double) -> (ms: Int64, attempts: Int)? {
            let (onFailure, onSuccess) = (log(p1 / p0), log((1 - p1) / (1 - p0)))
            var sum = 0.0
            for (n, a) in attempts.enumerated() {
                sum += a.failed ? onFailure : onSuccess
                if sum >= threshold { return (a.ms, n + 1) }
            }
            return nil
        }
    }

    /// The expected delay of a sequential test that knows p₀ and p₁: ln(1/α) / KL(p₁‖p₀) in-scope attempts, with
    /// α the detector's own false-alarm budget for one scope and CUSUM (one false alarm in ARL₀ attempts), turned
    /// into minutes at the scope's attempt rate during the incident.
    public struct Oracle: Sendable {
        public var scope: String
        public var baseline: Double
        public var rate: Double
        public var attemptsPerMinute: Double
        public var attempts: Double
        public var delayMinutes: Double { attempts / max(attemptsPerMinute, 1e-9) }
    }

    public var detections: [Detection]
    public var falseAlerts: [Alert]
    public var months: Double
    public var allAlerts: [Alert]

    /// How far back before an incident the oracle's baseline counts attempts (outside every incident's window): 91 days.
    static let baselineLookback: Int64 = 91 * 86_400_000

    /// Whether an attempt at `t` counts towards the oracle's baseline for incident `w`: in the `baselineLookback`
    /// before it began and in no incident's window (`inAnIncident`).
    static func countsTowardsBaseline(_ t: Timestamp, of w: IncidentWindow, inAnIncident: Bool) -> Bool {
        !inAnIncident && t < w.start && t.ms >= w.start.ms - baselineLookback
    }

    /// A baseline from counts of attempts: at least half a failure in the attempts seen (`n` > 0).
    static func rate(_ c: (n: Int, f: Int)) -> Double { max(Double(c.f) / Double(c.n), 0.5 / Double(c.n)) }

    /// Runs the world through the engine and matches firing alerts to the incidents (`IncidentCoverage`).
    /// `progress` is told the share of the simulated time done, in 0...1, once per simulated day.
    public static func run(world: World, rules: AlertRules, start: Timestamp, end: Timestamp, wholeBudget: Double = 1,
                           progress: (Double) -> Void = { _ in }) -> AlertEvaluation {
        var world = world
        var days = SimulatedDays(start: start, end: end)
        var engine = AlertEngine(rules: rules)
        var alerts: [Alert] = []
        let incidents = world.incidents
        let scopes = rules.sequential.map { $0.watched.map(\.name) } ?? ["overall"] + Plan.paid.map { "plan:\($0.rawValue)" }
            + FailureReason.allCases.map { "reason:\($0.rawValue)" }
        // Per incident and touched scope: first attempts in the 7 days before it (the scope's attempt rate), and
        // first attempts and failures inside it.
        let lookback: Int64 = 7 * 86_400_000
        let touched = incidents.map { w in scopes.filter { IncidentCoverage.touches($0, w) } }
        var weekAttempts = incidents.map { _ in [String: Int]() }
        var inside = incidents.map { _ in [String: (n: Int, f: Int)]() }
        /// The scope's failure rate without incidents, which the oracle knows: from its first attempts in the
        /// `baselineLookback` before the incident outside every incident's window. A week's attempts alone at
        /// 10,000 customers held 1-2 failures of a plan × reason failing 0.6-0.9% of the time, so the oracle's
        /// baseline was half or twice the true one by chance, and it decided too soon or too late.
        var base = inside
        /// The same, of the attempts in the incident's plan only: their own baseline, which a test that counts only
        /// them (below) must weigh them against.
        var baseInPlan = inside
        /// Per incident and touched scope, its attempts inside the window that are in the incident's plan: time and
        /// whether it failed (for the scope).
        var inPlan = incidents.map { _ in [String: [(ms: Int64, failed: Bool)]]() }
        let firstOnly = (rules.sequential?.attempts ?? .first) == .first
        while let e = world.next() {
            alerts += engine.observe(e, source: 0)
            if let share = days.share(at: e.occurredAt) { progress(share) }
            let plan: Plan, failure: FailureReason?, attempt: Int
            switch e.payload {
            case let .paymentSucceeded(_, _, p, _, _, a): plan = p; failure = nil; attempt = a
            case let .paymentFailed(_, _, p, _, _, a, r, _): plan = p; failure = r; attempt = a
            default: continue
            }
            if firstOnly && attempt != 1 { continue }
            let inAnIncident = incidents.contains { e.occurredAt >= $0.start && e.occurredAt < $0.end }
            for (i, w) in incidents.enumerated() where e.occurredAt.ms >= w.start.ms - Self.baselineLookback && e.occurredAt < w.end {
                let isInside = e.occurredAt >= w.start
                guard isInside || Self.countsTowardsBaseline(e.occurredAt, of: w, inAnIncident: inAnIncident) else { continue }
                let inWeek = e.occurredAt.ms >= w.start.ms - lookback
                for scope in touched[i] {
                    let (planPart, reasonPart) = IncidentCoverage.parts(scope)
                    if let planPart, planPart != plan.rawValue { continue }
                    let failed = reasonPart.map { failure?.rawValue == $0 } ?? (failure != nil)
                    let f = failed ? 1 : 0
                    if isInside {
                        if w.plan == nil || w.plan == plan { inPlan[i][scope, default: []].append((e.occurredAt.ms, failed)) }
                        inside[i][scope, default: (0, 0)].n += 1
                        inside[i][scope, default: (0, 0)].f += f
                        continue
                    }
                    if inWeek { weekAttempts[i][scope, default: 0] += 1 }
                    base[i][scope, default: (0, 0)].n += 1
                    base[i][scope, default: (0, 0)].f += f
                    if w.plan == nil || w.plan == plan {
                        baseInPlan[i][scope, default: (0, 0)].n += 1
                        baseInPlan[i][scope, default: (0, 0)].f += f
                    }
                }
            }
        }
        alerts += engine.advance(to: .max)
        let coverage = IncidentCoverage(windows: incidents, alerts: alerts)
        let budget = rules.sequential.map { $0.falseAlertsPerMonth / Double($0.watched.count * $0.shifts.count) } ?? 1.0 / Double(scopes.count)
        let planShare = incidents.indices.map { i in
            inside[i].mapValues { $0.n }.reduce(into: [String: Double]()) { out, e in out[e.key] = Double(inPlan[i][e.key]?.count ?? 0) / Double(max(e.value, 1)) }
        }
        /// Whether every attempt of the scope is in the incident's plan (the scope names the plan, or the incident has none).
        func touchesPlanOnly(_ scope: String, _ w: IncidentWindow) -> Bool { w.plan == nil || scope.contains("plan:") }
        let detections = incidents.enumerated().map { i, w in
            var best: Oracle?
            var first: RealizedOracle?, bound: RealizedOracle?
            for scope in touched[i] {
                guard let week = weekAttempts[i][scope], let x = inside[i][scope], x.n > 0, let b0 = base[i][scope] else { continue }
                // The true rates: the scope's baseline, and the outage's rate on top of it (the simulator fails an
                // in-scope attempt at the incident's rate, and at its normal rate otherwise) diluted by the scope's
                // attempts outside the incident's plan.
                let p0 = rate(b0)
                let share = touchesPlanOnly(scope, w) ? 1.0 : planShare[i][scope] ?? 1.0
                let p1 = p0 + (1 - p0) * w.failureRate * share
                guard p1 > p0 else { continue }
                let monthly = Double(week) / 7 * 30.44
                let arl0 = max(monthly / budget, 10)
                let attempts = log(arl0) / SequentialAlerting.kl(min(p1, 1 - 1e-9), p0)
                let oracle = Oracle(scope: scope, baseline: p0, rate: p1, attemptsPerMinute: Double(x.n) / w.durationMinutes, attempts: attempts)
                if oracle.delayMinutes < best?.delayMinutes ?? .infinity { best = oracle }
                // The same test on this run's attempts: those in the incident's plan weighed at the outage's rate
                // against their own baseline (in a scope wider than the plan, the plan's rate there, not the scope's:
                // a plan failing more often than the scope's other plans made the test decide sooner than any valid
                // test could), nothing for the others.
                guard let q0 = RealizedOracle.nullRate(planOnly: touchesPlanOnly(scope, w), before: b0, beforeInPlan: baseInPlan[i][scope]) else { continue }
                let q1 = min(q0 + (1 - q0) * w.failureRate, 1 - 1e-9)
                let ordered = (inPlan[i][scope] ?? []).sorted { $0.ms < $1.ms }
                if let (ms, n) = RealizedOracle.decision(ordered, p0: q0, p1: q1, threshold: log(arl0)) {
                    let minutes = Double(ms - w.start.ms) / 60_000
                    if minutes < first?.delayMinutes ?? .infinity { first = RealizedOracle(scope: scope, delayMinutes: minutes, attempts: n) }
                }
                let wholeBudgetThreshold = log(max(monthly / max(wholeBudget, 1e-9), 10)) - SequentialAlerting.overshoot(p0: q0, p1: q1)
                if let (ms, n) = RealizedOracle.decision(ordered, p0: q0, p1: q1, threshold: max(wholeBudgetThreshold, 0)) {
                    let minutes = Double(ms - w.start.ms) / 60_000
                    if minutes < bound?.delayMinutes ?? .infinity { bound = RealizedOracle(scope: scope, delayMinutes: minutes, attempts: n) }
                }
            }
            let covered = coverage.incidents[i]
            return Detection(incident: w, alert: covered.first, oracle: best, realized: first, bound: bound,
                             firings: covered.firings.count, resolvedAfterEndMinutes: covered.resolvedAfterEndMinutes)
        }
        return AlertEvaluation(detections: detections, falseAlerts: coverage.falseAlerts,
                               months: Double(end.ms - start.ms) / (30.44 * 86_400_000), allAlerts: alerts)
    }

    public var report: String {
        var lines: [String] = []
        for d in detections {
            let w = d.incident
            let scope = [w.plan.map { "plan \($0.rawValue)" }, "reason \(w.reason.rawValue)"].compactMap { $0 }.joined(separator: ", ")
            var realized = d.realized.map { String(format: "on this run's attempts %.1f min in [%@] (%d attempts)", $0.delayMinutes, $0.scope, $0.attempts) }
                ?? "on this run's attempts: not within the window"
            realized += d.bound.map { String(format: "; with the whole false-alarm budget on one scope %.1f min in [%@]", $0.delayMinutes, $0.scope) }
                ?? "; with the whole false-alarm budget on one scope: not within the window"
            let oracle = d.oracle.map { String(format: "oracle %.1f min expected in [%@] (%.2f%% → %.1f%%, %.2f attempts/min), %@", $0.delayMinutes, $0.scope,
                                               $0.baseline * 100, $0.rate * 100, $0.attemptsPerMinute, realized) } ?? "oracle: no attempts"
            if let a = d.alert {
                let resolved = d.resolvedAfterEndMinutes.map { String(format: "resolved %.1f h after the incident's end", $0 / 60) } ?? "still firing at the end of the run"
                lines.append(String(format: "incident %@ (%@, %@ at %.0f%%, %.1f h): detected by %@ [%@] after %.1f minutes (%d firing alert(s), %@); %@",
                                    w.name, w.start.description, scope, w.failureRate * 100, w.durationMinutes / 60, a.rule, a.scope, d.delayMinutes!,
                                    d.firings, resolved, oracle))
            } else {
                lines.append(String(format: "incident %@ (%@, %@ at %.0f%%, %.1f h): NOT detected; %@", w.name, w.start.description, scope,
                                    w.failureRate * 100, w.durationMinutes / 60, oracle))
            }
        }
        lines.append(String(format: "false alerts: %d in %.1f simulated months (%.2f per month)", falseAlerts.count, months,
                            Double(falseAlerts.count) / max(months, 0.001)))
        for a in falseAlerts.prefix(10) {
            lines.append(String(format: "  false: %@ [%@] at %@: %.1f%% vs baseline %.1f%% (%d attempts)", a.rule, a.scope, a.at.description,
                                a.observedRate * 100, a.baselineRate * 100, a.attempts))
        }
        return lines.joined(separator: "\n")
    }
}

/// One incident over runs with several seeds: the goal must hold in every run (each against the oracle on its
/// own attempts); the means are for reading.
public struct SeededDetection: Sendable {
    public var runs: [AlertEvaluation.Detection]

    /// `runs`: one detection of the same incident per seed, at least one.
    public init(_ runs: [AlertEvaluation.Detection]) {
        self.runs = runs
    }

    public var incident: IncidentWindow { runs[0].incident }

    /// Per seed, the alert's delay in minutes (nil: not detected).
    public var delays: [Double?] { runs.map(\.delayMinutes) }
    /// The mean delay over the seeds that detected it.
    public var meanDelay: Double? { Self.mean(runs.compactMap(\.delayMinutes)) }
    /// The mean of the oracle's expected delays.
    public var meanOracle: Double? { Self.mean(runs.compactMap { $0.oracle?.delayMinutes }) }
    /// Per seed, the oracle's delay on that seed's attempts (nil: it does not decide within the window).
    public var realizedDelays: [Double?] { runs.map { $0.realized?.delayMinutes } }
    /// Per seed, the limit of any test held to the goal's false-alarm rate (`Detection.bound`; nil: beyond the window).
    public var boundDelays: [Double?] { runs.map { $0.bound?.delayMinutes } }
    /// Per seed, hours from the incident's end to the resolution of its alerts (nil: not detected, or still firing).
    public var resolvedAfterEndHours: [Double?] { runs.map { $0.resolvedAfterEndMinutes.map { $0 / 60 } } }

    public func meetsGoal(step: Double) -> Bool { runs.allSatisfy { $0.meetsGoal(step: step) } }

    static func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }

    /// Groups the detections of runs with different seeds by incident (same name and start).
    public static func combine(_ runs: [[AlertEvaluation.Detection]]) -> [SeededDetection] {
        guard let first = runs.first else { return [] }
        return first.map { d in
            SeededDetection(runs.compactMap { run in run.first { $0.incident.name == d.incident.name && $0.incident.start == d.incident.start } })
        }
    }
}

extension IncidentWindow {
    var durationMinutes: Double { Double(end.ms - start.ms) / 60_000 }
}

/// Detection delays over many incident-runs (every incident of a scenario in every seed) against a target delay:
/// one run is one draw of how the attempts fall, so a goal such as "within 2 hours" is read over many of them.
/// Next to the detector's, the same for the limit of any test held to the goal's false-alarm rate
/// (`Detection.bound`).
public struct DelaySummary: Sendable, Equatable {
    public var targetMinutes: Double
    public var runs: Int
    /// Incident-runs the detector caught at all, and within the target.
    public var detected: Int
    public var within: Int
    /// The median and 90th percentile of its delay (nearest rank; an incident-run not caught counts as slower than any;
    /// nil when the rank falls on one).
    public var median: Double?
    public var p90: Double?
    /// Incident-runs the limit of any test decides within the target, and its median delay.
    public var boundWithin: Int
    public var boundMedian: Double?

    public init(_ detections: [AlertEvaluation.Detection], targetMinutes: Double) {
        self.targetMinutes = targetMinutes
        runs = detections.count
        let delays = detections.map(\.delayMinutes), bounds = detections.map { $0.bound?.delayMinutes }
        detected = delays.count { $0 != nil }
        within = delays.count { ($0 ?? .infinity) <= targetMinutes }
        median = Self.quantile(delays, 0.5)
        p90 = Self.quantile(delays, 0.9)
        boundWithin = bounds.count { ($0 ?? .infinity) <= targetMinutes }
        boundMedian = Self.quantile(bounds, 0.5)
    }

    /// The nearest-rank quantile (the ⌈q·n⌉-th smallest), nil standing for slower than any value: nil when that rank
    /// falls on one, or there is nothing.
    static func quantile(_ xs: [Double?], _ q: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let sorted = xs.map { $0 ?? .infinity }.sorted()
        let v = sorted[max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        return v.isFinite ? v : nil
    }

    /// One line: "64 incident-runs; detected within 120 min: 44 (69%), at all: 64; delay median 83 min, …".
    public func line(maxFalsePerMonth: Double) -> String {
        func minutes(_ x: Double?) -> String { x.map { String(format: "%.0f min", $0) } ?? "not caught" }
        func share(_ n: Int) -> String { String(format: "%d (%.0f%%)", n, 100 * Double(n) / Double(max(runs, 1))) }
        let target = String(format: "%g", targetMinutes)
        return "\(runs) incident-runs; detected within \(target) min: \(share(within)), at all: \(detected); delay median \(minutes(median)), "
            + "90th percentile \(minutes(p90)); any test within \(String(format: "%g", maxFalsePerMonth)) false alert(s) a month: within \(target) min "
            + "\(share(boundWithin)), median \(minutes(boundMedian))"
    }
}
