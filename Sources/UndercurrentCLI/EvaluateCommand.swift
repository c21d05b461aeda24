import ArgumentParser
import Events
import Foundation
import Marts
import Simulation
import Config

/// Scores alerting against a scenario's ground truth: detection delay per injected incident, false alerts.
public struct AlertEvaluation {
    public struct Detection: Sendable {
        public var incident: IncidentWindow
        public var alert: Alert?
        public var delayMinutes: Double? { alert.map { Double($0.at.ms - incident.start.ms) / 60_000 } }
    }
    public var detections: [Detection]
    public var falseAlerts: [Alert]
    public var months: Double
    public var allAlerts: [Alert]

    /// An alert matches an incident when it fires inside the incident's window (or up to 10 minutes after
    /// its end) with a scope the incident touches: overall, its plan (any plan when it has none), or its reason.
    public static func run(world: World, rules: AlertRules, start: Timestamp, end: Timestamp) -> AlertEvaluation {
        var world = world
        var engine = AlertEngine(rules: rules)
        var alerts: [Alert] = []
        while let e = world.next() {
            alerts += engine.observe(e, source: 0)
        }
        alerts += engine.advance(to: .max)
        let firing = alerts.filter { $0.state == .firing }
        func matches(_ a: Alert, _ w: IncidentWindow) -> Bool {
            let inWindow = a.at >= w.start && a.at.ms <= w.end.ms + 10 * 60_000
            // An incident without a plan touches every plan.
            let plan = w.plan.map { a.scope == "plan:\($0.rawValue)" } ?? a.scope.hasPrefix("plan:")
            let scope = a.scope == "overall" || a.scope == "reason:\(w.reason.rawValue)" || plan
            return inWindow && scope
        }
        let detections = world.incidents.map { w in Detection(incident: w, alert: firing.first { matches($0, w) }) }
        let falseAlerts = firing.filter { a in !world.incidents.contains { matches(a, $0) } }
        return AlertEvaluation(detections: detections, falseAlerts: falseAlerts,
                               months: Double(end.ms - start.ms) / (30.44 * 86_400_000), allAlerts: alerts)
    }

    public var report: String {
        var lines: [String] = []
        for d in detections {
            let w = d.incident
            let scope = [w.plan.map { "plan \($0.rawValue)" }, "reason \(w.reason.rawValue)"].compactMap { $0 }.joined(separator: ", ")
            if let a = d.alert {
                lines.append(String(format: "incident %@ (%@, %@ at %.0f%%): detected by %@ [%@] after %.0f minutes",
                                    w.name, w.start.description, scope, w.failureRate * 100, a.rule, a.scope, d.delayMinutes!))
            } else {
                lines.append("incident \(w.name) (\(w.start), \(scope)): NOT detected")
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

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-alerts",
        abstract: "Score the alert rules against a scenario's ground truth: detection delay per incident and false alerts per month.",
        discussion: """
        Runs the simulation (payment flows only: product engagement is switched off, which does not change
        payments) through the alert engine in event time, then matches firing alerts to the injected
        incidents. Payment volume grows with --customers: monthly B2B billing needs many customers for a
        10-minute window to hold enough attempts.
        """
    )

    @OptionGroup var simulation: SimulationOptions
    @Option(help: "Alert rules file (default: config/alerts.yaml).") var rules: String?
    @Flag(help: "Exit non-zero unless every incident is detected within 10 minutes and false alerts are at most one per month.") var require = false

    func run() throws {
        let rules = try AlertConfig.load(file: self.rules, configDir: simulation.configDir)
        var params = try simulation.parameters()
        params.config.engagement.sessionsPerWeek = 0
        params.config.engagement.inactiveSessionsPerWeek = 0
        let started = ContinuousClock.now
        let result = AlertEvaluation.run(world: try World(params), rules: rules, start: params.start, end: params.end)
        Console.out(result.report)
        Console.err(String(format: "evaluated in %.1f s", (ContinuousClock.now - started).seconds))
        if require {
            let ok = result.detections.allSatisfy { ($0.delayMinutes ?? .infinity) <= 10 }
                && Double(result.falseAlerts.count) <= max(result.months, 1)
            if !ok { throw ExitCode(1) }
        }
    }
}

/// Scores the risk model against ground truth: every paying customer is scored at a cut-off time from the
/// events up to it, then labelled by whether it actually churns (either kind) in the following 60 days.
public struct RiskEvaluation: Sendable {
    public var customers: Int
    public var churners: Int
    public var auc: Double
    public var top5Precision: Double
    public var baseRate: Double
    public var lift: Double { baseRate == 0 ? 0 : top5Precision / baseRate }
    /// Per reason code: customers carrying it and how many of them churned.
    public var reasons: [String: (churned: Int, customers: Int)]

    public static func run(parameters: SimulationParameters, cutoff: Timestamp, horizonDays: Int64 = 60,
                           signals: ((String, CustomerState, Cancellation?) -> Void)? = nil) throws -> RiskEvaluation {
        var params = parameters
        params.end = cutoff.adding(days: horizonDays)
        var world = try World(params)
        var state = MartState()
        while let e = world.next() {
            if e.occurredAt <= cutoff { _ = state.apply(e, valueHash: 0) }
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
        let auc = positives == 0 || negatives == 0 ? 0 : pairs / (Double(positives) * Double(negatives))
        // Precision among the top 5% by score (ties broken by customer id, so the figure is reproducible).
        let top = scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }.prefix(max(1, scored.count / 20))
        let precision = Double(top.filter(\.churned).count) / Double(top.count)
        return RiskEvaluation(customers: scored.count, churners: positives, auc: auc, top5Precision: precision,
                              baseRate: scored.isEmpty ? 0 : Double(positives) / Double(scored.count),
                              reasons: reasonCounts.mapValues { ($0.pos, $0.all) })
    }

    public var report: String {
        var lines = [String(format: "%d paying customers scored, %d churn within 60 days (base rate %.1f%%): ROC AUC %.3f; top 5%% precision %.1f%% (%.1f× random)",
                            customers, churners, baseRate * 100, auc, top5Precision * 100, lift)]
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
        let params = try simulation.parameters()
        let cut: Timestamp
        if let cutoff {
            guard let d = Day(iso: Array(cutoff.utf8)) else { throw ValidationError("--cutoff: expected YYYY-MM-DD, got '\(cutoff)'") }
            cut = Timestamp(ms: d.days * Timestamp.millisecondsPerDay)
        } else {
            cut = params.end.adding(days: -60)
        }
        var rows = ["customer_id," + RiskModel.Signals.csvHeader + ",churned,involuntary"]
        let result = try RiskEvaluation.run(parameters: params, cutoff: cut, signals: signalsOut == nil ? nil : { id, c, kind in
            rows.append(id + "," + RiskModel.signals(c, asOf: cut, forAnalysis: true).csv + (kind == nil ? ",0,0" : kind == .involuntary ? ",1,1" : ",1,0"))
        })
        if let signalsOut {
            do { try (rows.joined(separator: "\n") + "\n").write(toFile: signalsOut, atomically: true, encoding: .utf8) } catch {
                throw CLIError("cannot write \(signalsOut): \(error.localizedDescription)")
            }
        }
        Console.out("\(simulation.scenario), cut-off \(cut): \(result.report)")
        if require && !(result.auc >= 0.8 && result.lift >= 3) { throw ExitCode(1) }
    }
}
