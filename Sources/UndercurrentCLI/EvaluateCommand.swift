import ArgumentParser
import Events
import Foundation
import Marts
import Simulation
import Yams

public enum AlertConfig {
    /// Loads `alerts.yaml` from the config directory (or an explicit file) and validates it.
    public static func load(file: String?, configDir: String?) throws -> AlertRules {
        let path = try file ?? ConfigLoader.directory(configDir).appendingPathComponent("alerts.yaml").path
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw CLIError("cannot read alert rules \(path)") }
        let rules: AlertRules
        do { rules = try YAMLDecoder().decode(AlertRules.self, from: text) } catch let e as DecodingError {
            throw CLIError("alert rules \(path): \(ConfigLoader.describe(e))")
        }
        do { try rules.validate() } catch { throw CLIError("alert rules \(path): \(error)") }
        return rules
    }
}

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
