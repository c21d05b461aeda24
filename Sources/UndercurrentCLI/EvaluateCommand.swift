import ArgumentParser
import Events
import Foundation
import Marts
import Simulation
import Synchronization
import Config

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
        /// scope or CUSUM; nil when it decides in no scope within the window. A goal faster than this is beyond any
        /// detector that meets the false-alarm goal.
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
    /// incident's plan counts nothing) and decides when the sum reaches ln(ARL₀), the detector's own threshold
    /// for that false-alarm budget. One run's attempts can hold less evidence than expected (3 failures of 22 where
    /// 6.6 were expected): then no test could decide sooner, and the expected delay alone would blame the detector.
    public struct RealizedOracle: Sendable {
        public var scope: String
        public var delayMinutes: Double
        public var attempts: Int

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
        // Per incident and touched scope: first attempts and failures in the 7 days before it and inside it.
        let lookback: Int64 = 7 * 86_400_000
        let touched = incidents.map { w in scopes.filter { IncidentCoverage.touches($0, w) } }
        var before = incidents.map { _ in [String: (n: Int, f: Int)]() }, inside = before
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
            for (i, w) in incidents.enumerated() where e.occurredAt.ms >= w.start.ms - lookback && e.occurredAt < w.end {
                let isInside = e.occurredAt >= w.start
                for scope in touched[i] {
                    let (planPart, reasonPart) = IncidentCoverage.parts(scope)
                    if let planPart, planPart != plan.rawValue { continue }
                    let failed = reasonPart.map { failure?.rawValue == $0 } ?? (failure != nil)
                    if isInside {
                        if w.plan == nil || w.plan == plan { inPlan[i][scope, default: []].append((e.occurredAt.ms, failed)) }
                        inside[i][scope, default: (0, 0)].n += 1
                        if failed { inside[i][scope, default: (0, 0)].f += 1 }
                    } else {
                        before[i][scope, default: (0, 0)].n += 1
                        if failed { before[i][scope, default: (0, 0)].f += 1 }
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
                guard let b = before[i][scope], b.n > 0, let x = inside[i][scope], x.n > 0 else { continue }
                // The true rates: the scope's baseline, and the outage's rate on top of it (the simulator fails an
                // in-scope attempt at the incident's rate, and at its normal rate otherwise) diluted by the scope's
                // attempts outside the incident's plan.
                let p0 = max(Double(b.f) / Double(b.n), 0.5 / Double(b.n))
                let share = touchesPlanOnly(scope, w) ? 1.0 : planShare[i][scope] ?? 1.0
                let p1 = p0 + (1 - p0) * w.failureRate * share
                guard p1 > p0 else { continue }
                let monthly = Double(b.n) / 7 * 30.44
                let arl0 = max(monthly / budget, 10)
                let attempts = log(arl0) / SequentialAlerting.kl(min(p1, 1 - 1e-9), p0)
                let oracle = Oracle(scope: scope, baseline: p0, rate: p1, attemptsPerMinute: Double(x.n) / w.durationMinutes, attempts: attempts)
                if oracle.delayMinutes < best?.delayMinutes ?? .infinity { best = oracle }
                // The same test on this run's attempts: p₁ for those in the incident's plan, nothing for the others.
                let q1 = min(p0 + (1 - p0) * w.failureRate, 1 - 1e-9)
                let ordered = (inPlan[i][scope] ?? []).sorted { $0.ms < $1.ms }
                if let (ms, n) = RealizedOracle.decision(ordered, p0: p0, p1: q1, threshold: log(arl0)) {
                    let minutes = Double(ms - w.start.ms) / 60_000
                    if minutes < first?.delayMinutes ?? .infinity { first = RealizedOracle(scope: scope, delayMinutes: minutes, attempts: n) }
                }
                if let (ms, n) = RealizedOracle.decision(ordered, p0: p0, p1: q1, threshold: log(max(monthly / max(wholeBudget, 1e-9), 10))) {
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

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-alerts",
        abstract: "Score the alert rules against a scenario's ground truth: detection delay per incident next to an oracle's, and false alerts per month.",
        discussion: """
        Runs the simulation (its engagement events simulated but not emitted, so payments are those of the full \
        stream) through the alert engine in event time, then matches firing alerts to the injected \
        incidents. For each incident it also prints the delay of an oracle sequential test that knows the true \
        baseline and outage rates: its expected delay (ln(1/α) / KL(p₁‖p₀) attempts of the fastest watched scope, \
        α the detector's false-alarm budget per scope and CUSUM, at the scope's attempt rate during the \
        incident), and its delay on the run's own attempts (its log-likelihood ratio summed from the incident's \
        start up to ln(1/α)), and the limit of any test held to --max-false-per-month: the same oracle with that \
        whole budget spent on one scope; and how long after the incident's end its alerts resolved, and how many \
        firing alerts it raised (a scope that resolved while the outage lasted and fired again counts twice). \
        --sweep runs every listed business size over every --scenarios scenario and checks \
        the goals: every incident the oracle detects within its window on the run's attempts detected within 2× \
        that oracle's delay plus one evaluation step, and at most --max-false-per-month false alerts per \
        simulated month at each size.
        With --seeds each size and scenario runs once per seed (two at a time); the goals must hold in every seed.
        """
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Alert rules file (default: config/alerts.yaml).") var rules: String?
    @Option(help: "Business sizes to sweep, comma-separated (e.g. 10000,30000,300000,2000000); each runs every --scenarios scenario.") var sweep: String?
    @Option(help: "With --sweep: scenarios, comma-separated.") var scenarios = "payment-incident,incident-shapes"
    @Option(help: "With --sweep or --require: most false alerts per simulated month.") var maxFalsePerMonth = 1.0
    @Option(help: "Seeds to run each size and scenario with, comma-separated (default: --seed); the goals must hold in every seed.") var seeds: String?
    @Flag(help: "Exit 1 unless the goals are met (see above).") var require = false

    func seedList() throws -> [UInt64] {
        guard let seeds else { return [simulation.seed] }
        let list = seeds.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.count <= 64, list.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--seeds: expected 1 to 64 seeds (non-negative integers), comma-separated; got '\(seeds)'")
        }
        return list.map { $0! }
    }

    func validate() throws {
        _ = try seedList()
        if let sweep {
            let sizes = sweep.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 100 && ($0 ?? 0) <= 50_000_000 }) else {
                throw ValidationError("--sweep: expected business sizes from 100 to 50000000, comma-separated; got '\(sweep)'")
            }
        }
        guard maxFalsePerMonth >= 0 else { throw ValidationError("--max-false-per-month: expected 0 or more") }
    }

    func run() throws {
        let rules = try AlertConfig.load(file: self.rules, configDir: simulation.configDir)
        let step = Double(max(1, rules.evaluateEverySeconds / 60))
        let sizes = sweep.map { $0.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } } ?? [simulation.customers]
        let names = sweep == nil ? [simulation.scenario] : scenarios.split(separator: ",").map { String($0) }
        let seedList = try self.seedList()
        var ok = true
        for size in sizes {
            var falseAlerts = 0, months = 0.0
            for name in names {
                let runParams = try seedList.map { seed in
                    var options = simulation
                    options.customers = size
                    options.scenario = name
                    options.seed = seed
                    var p = try options.parameters()
                    p.omitEngagement = true
                    return p
                }
                // The seeds' runs are independent: two at a time, one per core, each with a world of its own.
                let results = Mutex([Result<AlertEvaluation, ConfigError>?](repeating: nil, count: runParams.count))
                let started = ContinuousClock.now
                // Progress: the slowest seed's share of the simulated time (a large size runs for minutes).
                let shares = Mutex([Double](repeating: 0, count: runParams.count))
                let progress = ThrottledProgress()
                let label = "\(size) customers, \(name)\(runParams.count > 1 ? ", \(runParams.count) seeds" : "")"
                let wholeBudget = maxFalsePerMonth
                DispatchQueue.concurrentPerform(iterations: runParams.count) { k in
                    let p = runParams[k]
                    let r = Result { () throws(ConfigError) in
                        AlertEvaluation.run(world: try World(p), rules: rules, start: p.start, end: p.end, wholeBudget: wholeBudget) { share in
                            shares.withLock { $0[k] = share }
                            progress.say { "evaluating \(label): \(Int((shares.withLock { $0.min() } ?? 0) * 100))% of the simulated time" }
                        }
                    }
                    results.withLock { $0[k] = r }
                }
                progress.end()
                let runs: [AlertEvaluation]
                do { runs = try results.withLock { $0 }.map { try $0!.get() } } catch { throw ValidationError("\(error)") }
                let seconds = (ContinuousClock.now - started).seconds
                let took = seedList.count > 1 ? "\(seedList.count) seeds evaluated in \(String(format: "%.1f", seconds)) s" : "evaluated in \(String(format: "%.1f", seconds)) s"
                for (seed, result) in zip(seedList, runs) {
                    Console.out("== \(size) customers, \(name)\(seedList.count > 1 ? ", seed \(seed)" : "") (\(took))")
                    Console.out(result.report)
                    falseAlerts += result.falseAlerts.count
                    months += result.months
                }
                for d in SeededDetection.combine(runs.map(\.detections)) {
                    if seedList.count > 1 {
                        func list(_ xs: [Double?], _ none: String) -> String { xs.map { $0.map { String(format: "%.0f", $0) } ?? none }.joined(separator: ", ") }
                        Console.out(String(format: "== %@ over %d seeds: delays %@ min (mean %@); oracle on each seed's attempts %@ min; expected oracle mean %@; "
                                           + "any test within %@ false alert(s) a month: %@ min; resolved %@ h after its end; firing alerts %@",
                                           d.incident.name, seedList.count, list(d.delays, "missed"), d.meanDelay.map { String(format: "%.1f", $0) } ?? "-",
                                           list(d.realizedDelays, "beyond"), d.meanOracle.map { String(format: "%.1f min", $0) } ?? "-",
                                           String(format: "%g", maxFalsePerMonth), list(d.boundDelays, "beyond"),
                                           d.resolvedAfterEndHours.map { $0.map { String(format: "%.1f", $0) } ?? "-" }.joined(separator: ", "),
                                           d.runs.map { "\($0.firings)" }.joined(separator: ", ")))
                    }
                    if !d.meetsGoal(step: step) {
                        ok = false
                        Console.out("  GOAL MISSED: \(d.incident.name) at \(size) customers")
                    }
                }
            }
            let perMonth = Double(falseAlerts) / max(months, 0.001)
            if perMonth > maxFalsePerMonth { ok = false }
            Console.out(String(format: "== %d customers: %d false alerts in %.1f simulated months (%.2f per month)%@", size, falseAlerts, months, perMonth,
                               perMonth > maxFalsePerMonth ? " GOAL MISSED" : ""))
        }
        if require && !ok { throw ExitCode(1) }
    }
}

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

struct EvaluateRiskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-risk",
        abstract: "Score the risk model against ground truth: ROC AUC and top-5% precision for churn in the 60 days after a cut-off."
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Cut-off date, YYYY-MM-DD (default: 60 days before the end of the simulated period).") var cutoff: String?
    @Flag(help: "Exit non-zero unless AUC ≥ 0.80 and the top 5% is at least 3 times as precise as random.") var require = false
    @Option(help: "Also write every scored customer's raw signals and churn label to this CSV file, for analysis.") var signalsOut: String?

    func run() throws {
        try StartChecks.file(signalsOut, "the signals file")
        let params = try simulation.parameters()
        let cut: Timestamp
        if let cutoff {
            guard let d = Day(iso: Array(cutoff.utf8)) else { throw ValidationError("--cutoff: expected YYYY-MM-DD, got '\(cutoff)'") }
            cut = Timestamp(ms: d.days * Timestamp.millisecondsPerDay)
            guard cut > params.start else {
                throw ValidationError("--cutoff: expected a date after the simulated business starts (\(params.start)), got '\(cutoff)'")
            }
        } else {
            cut = params.end.adding(days: -60)
        }
        var rows = ["customer_id," + RiskModel.Signals.csvHeader + ",churned,involuntary"]
        let progress = ThrottledProgress()
        let result = try RiskEvaluation.run(parameters: params, cutoff: cut, signals: signalsOut == nil ? nil : { id, c, kind in
            rows.append(id + "," + RiskModel.signals(c, asOf: cut, forAnalysis: true).csv + (kind == nil ? ",0,0" : kind == .involuntary ? ",1,1" : ",1,0"))
        }, progress: { share in progress.say { "evaluating risk, \(params.customers) customers: \(Int(share * 100))% of the simulated time" } })
        progress.end()
        if let signalsOut {
            do { try (rows.joined(separator: "\n") + "\n").write(toFile: signalsOut, atomically: true, encoding: .utf8) } catch {
                throw CLIError("cannot write \(signalsOut): \(error.localizedDescription)")
            }
        }
        Console.out("\(simulation.scenario), cut-off \(cut): \(result.report)")
        if require && !((result.auc ?? 0) >= 0.8 && (result.lift ?? 0) >= 3) { throw ExitCode(1) }
    }
}
