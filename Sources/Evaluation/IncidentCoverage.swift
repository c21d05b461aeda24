import Events
import Foundation
import Marts
import Simulation

/// Alerts against a simulation's injected incidents, its ground truth: which alerts are about which incident, and
/// which are about none (false alerts). `evaluate-alerts` scores with it, and the demo reports with it.
public struct IncidentCoverage: Sendable {
    /// One incident and the alerts about it.
    public struct Incident: Sendable {
        public var window: IncidentWindow
        /// Every firing alert about the incident, in time order (more than one: it resolved and fired again, or
        /// several scopes fired).
        public var firings: [Alert]
        /// Minutes from the incident's end to the last resolution of an alert about it (negative: before the end);
        /// nil when one of them still fires at the end or none fired.
        public var resolvedAfterEndMinutes: Double?

        /// The first alert about it.
        public var first: Alert? { firings.first }
        /// Minutes from the incident's start to its first alert.
        public var delayMinutes: Double? { first.map { Double($0.at.ms - window.start.ms) / 60_000 } }
    }

    public var incidents: [Incident]
    /// The firing alerts about no incident.
    public var falseAlerts: [Alert]

    /// Matches `alerts` (firing and resolved transitions, in time order) to `windows`.
    public init(windows: [IncidentWindow], alerts: [Alert]) {
        let firing = alerts.filter { $0.state == .firing }
        incidents = windows.map { w in
            let about = firing.filter { Self.matches($0, w) }
            // Each firing's resolution: the resolved alert of its scope that names its firing time.
            let resolutions = about.map { f in alerts.first { $0.state == .resolved && $0.scope == f.scope && $0.firingSince == f.at }?.at.ms }
            let resolvedAfterEnd = about.isEmpty || resolutions.contains(nil) ? nil : Double(resolutions.map { $0! }.max()! - w.end.ms) / 60_000
            return Incident(window: w, firings: about, resolvedAfterEndMinutes: resolvedAfterEnd)
        }
        falseAlerts = firing.filter { a in !windows.contains { Self.matches(a, $0) } }
    }

    /// Whether an alert is about an incident: its scope touches the incident, and it fires during it or up to 10
    /// minutes after its end, or later (within 6 hours) for a shift it estimates began before the end.
    static func matches(_ a: Alert, _ w: IncidentWindow) -> Bool {
        guard touches(a.scope, w), a.at >= w.start else { return false }
        return a.at.ms <= w.end.ms + 10 * 60_000 || (a.at.ms <= w.end.ms + 6 * 3_600_000 && (a.shiftStart.map { $0 < w.end } ?? false))
    }

    /// Whether an alert's scope is one the incident touches: overall, its reason, its plan (any plan when it has
    /// none), or its plan × reason.
    static func touches(_ scope: String, _ w: IncidentWindow) -> Bool {
        if scope == "overall" { return true }
        let (plan, reason) = parts(scope)
        if let reason, reason != w.reason.rawValue { return false }
        if let plan, let p = w.plan, plan != p.rawValue { return false }
        return plan != nil || reason != nil
    }

    /// A scope name's plan and reason ("plan:premium/reason:gateway_timeout"; either may be missing).
    static func parts(_ scope: String) -> (plan: String?, reason: String?) {
        var plan: String?, reason: String?
        for part in scope.split(separator: "/") {
            if part.hasPrefix("plan:") { plan = String(part.dropFirst(5)) }
            if part.hasPrefix("reason:") { reason = String(part.dropFirst(7)) }
        }
        return (plan, reason)
    }
}

extension IncidentWindow {
    /// What the incident fails, for a person: "plan standard, reason do_not_honor at 60%, 12.0 h".
    var summary: String {
        let scope = [plan.map { "plan \($0.rawValue)" }, "reason \(reason.rawValue)"].compactMap { $0 }.joined(separator: ", ")
        return String(format: "%@ at %.0f%%, %.1f h", scope, failureRate * 100, durationMinutes / 60)
    }
}

extension IncidentCoverage {
    /// The demo's account of its alerts against the scenario's incidents, a line each: when each incident in
    /// `start..<end` was first alerted on and in which scope, or that it was not; when its alerts resolved; then
    /// the alerts about no incident. Incidents outside the simulated time are counted, not listed.
    public static func demoLines(windows: [IncidentWindow], alerts: [Alert], start: Timestamp, end: Timestamp) -> [String] {
        let inRun = windows.filter { $0.start < end && $0.end > start }
        let coverage = IncidentCoverage(windows: inRun, alerts: alerts)
        var lines: [String] = []
        if windows.isEmpty {
            lines.append("the scenario injects no incident: any alert is a false one")
        } else {
            let outside = windows.count - inRun.count
            lines.append("the scenario's injected incidents against the alerts"
                         + (outside > 0 ? " (\(outside) more outside the simulated time)" : "") + (inRun.isEmpty ? ": none in the simulated time" : ":"))
        }
        for i in coverage.incidents {
            let w = i.window
            let head = "  \(w.name) (\(w.start.minuteText), \(w.summary)): "
            guard let first = i.first, let delay = i.delayMinutes else {
                lines.append(head + "no alert (the line above says what this volume can catch)")
                continue
            }
            let resolved = i.resolvedAfterEndMinutes.map {
                $0 < 0 ? String(format: "resolved %.1f h before its end", -$0 / 60) : String(format: "resolved %.1f h after its end", $0 / 60)
            } ?? "still firing at the end"
            lines.append(head + String(format: "first alert after %.0f min, [%@] at %.1f%% failing against %.1f%%; %d alert(s) about it, %@",
                                       delay, first.scope, first.observedRate * 100, first.baselineRate * 100, i.firings.count, resolved))
        }
        let months = Double(end.ms - start.ms) / (30.44 * 86_400_000)
        lines.append(String(format: "alerts about no injected incident: %d (%.2f a simulated month)", coverage.falseAlerts.count,
                            Double(coverage.falseAlerts.count) / max(months, 0.001)))
        for a in coverage.falseAlerts.prefix(5) {
            lines.append(String(format: "  [%@] at %@: %.1f%% failing against %.1f%% (%d of %d attempts)", a.scope, a.at.minuteText,
                                a.observedRate * 100, a.baselineRate * 100, a.failures, a.attempts))
        }
        if coverage.falseAlerts.count > 5 { lines.append("  … and \(coverage.falseAlerts.count - 5) more (alerts.ndjson in the state directory)") }
        return lines
    }
}

extension Timestamp {
    /// "2025-05-15 12:00 UTC": to the minute, for a person.
    var minuteText: String {
        let s = description
        return String(s.prefix(10)) + " " + String(s.dropFirst(11).prefix(5)) + " UTC"
    }
}
