import Events
import Marts
@testable import Simulation
import Testing
@testable import Evaluation

/// Alerts matched to a scenario's injected incidents: what `evaluate-alerts` scores and the demo reports.
@Suite struct IncidentCoverageTests {
    static let hour: Int64 = 3_600_000
    static let day0 = Timestamp(year: 2025, month: 5, day: 15)

    static func at(hours: Double) -> Timestamp { Timestamp(ms: day0.ms + Int64(hours * Double(hour))) }

    /// A window from hour 12 to hour 15 of the day: premium's gateway timeouts at 40%.
    static let window = IncidentWindow(name: "gateway", start: at(hours: 12), end: at(hours: 15), plan: .premium, reason: .gatewayTimeout,
                                       failureRate: 0.4)

    static func firing(_ scope: String, hours: Double, shiftStart: Double? = nil) -> Alert {
        Alert(rule: "failure-rate-shift", scope: scope, state: .firing, at: at(hours: hours), firingSince: at(hours: hours), observedRate: 0.5,
              baselineRate: 0.05, attempts: 20, failures: 10, windowMinutes: 60, shiftStart: shiftStart.map { at(hours: $0) })
    }

    static func resolved(_ f: Alert, hours: Double) -> Alert {
        var r = f
        r.state = .resolved
        r.at = at(hours: hours)
        return r
    }

    @Test func anAlertIsAboutAnIncidentItTouchesWhileItLastsOrJustAfter() {
        let w = Self.window
        // During the window, in a scope it touches.
        #expect(IncidentCoverage.matches(Self.firing("plan:premium", hours: 13), w))
        #expect(IncidentCoverage.matches(Self.firing("overall", hours: 12), w))
        // Up to 10 minutes after its end; later only for a shift estimated to begin before the end, within 6 hours.
        #expect(IncidentCoverage.matches(Self.firing("reason:gateway_timeout", hours: 15 + 9.0 / 60), w))
        #expect(!IncidentCoverage.matches(Self.firing("reason:gateway_timeout", hours: 15 + 11.0 / 60), w))
        #expect(IncidentCoverage.matches(Self.firing("reason:gateway_timeout", hours: 17, shiftStart: 14.5), w))
        #expect(!IncidentCoverage.matches(Self.firing("reason:gateway_timeout", hours: 17, shiftStart: 15.5), w))
        #expect(!IncidentCoverage.matches(Self.firing("reason:gateway_timeout", hours: 21.5, shiftStart: 14.5), w))
        // Before it began, or in a scope it does not touch.
        #expect(!IncidentCoverage.matches(Self.firing("plan:premium", hours: 11.9), w))
        #expect(!IncidentCoverage.matches(Self.firing("plan:standard", hours: 13), w))
        #expect(!IncidentCoverage.matches(Self.firing("reason:expired_card", hours: 13), w))
    }

    @Test func anIncidentsAlertsResolveWhenTheLastOfThemDoes() {
        let a = Self.firing("plan:premium", hours: 12.5), b = Self.firing("overall", hours: 13)
        let stray = Self.firing("plan:standard", hours: 13)
        let all = [a, b, stray, Self.resolved(a, hours: 16), Self.resolved(b, hours: 18), Self.resolved(stray, hours: 14)]
        let c = IncidentCoverage(windows: [Self.window], alerts: all)
        #expect(c.incidents.count == 1)
        #expect(c.incidents[0].firings == [a, b])
        #expect(c.incidents[0].delayMinutes == 30)
        #expect(c.incidents[0].resolvedAfterEndMinutes == 180)  // b, at 18:00, three hours after the end
        #expect(c.falseAlerts == [stray])
        // One of them still firing: not resolved.
        let open = IncidentCoverage(windows: [Self.window], alerts: [a, b, Self.resolved(a, hours: 16)])
        #expect(open.incidents[0].resolvedAfterEndMinutes == nil)
        // A resolution of another firing of the same scope does not count for this one.
        var other = Self.resolved(a, hours: 16)
        other.firingSince = Self.at(hours: 2)
        #expect(IncidentCoverage(windows: [Self.window], alerts: [a, other]).incidents[0].resolvedAfterEndMinutes == nil)
    }

    @Test func theDemoSaysWhatWasCaughtWhatWasNotAndWhatWasFalse() {
        let caught = Self.window
        var missed = Self.window
        missed.name = "missed"
        missed.start = Self.at(hours: 40)
        missed.end = Self.at(hours: 42)
        var later = Self.window
        later.name = "after-the-run"
        later.start = Self.at(hours: 24 * 40)
        later.end = Self.at(hours: 24 * 40 + 1)
        let a = Self.firing("plan:premium/reason:gateway_timeout", hours: 12.25)
        let stray = Self.firing("reason:expired_card", hours: 30)
        let lines = IncidentCoverage.demoLines(windows: [caught, missed, later], alerts: [a, stray, Self.resolved(a, hours: 16.5)],
                                               start: Self.day0, end: Self.at(hours: 24 * 30))
        #expect(lines.count == 5, "\(lines)")
        #expect(lines[0] == "the scenario's injected incidents against the alerts (1 more outside the simulated time):", "\(lines)")
        #expect(lines[1] == "  gateway (2025-05-15 12:00 UTC, plan premium, reason gateway_timeout at 40%, 3.0 h): first alert after 15 min, "
                + "[plan:premium/reason:gateway_timeout] at 50.0% failing against 5.0%; 1 alert(s) about it, resolved 1.5 h after its end", "\(lines)")
        #expect(lines[2].hasPrefix("  missed (2025-05-16 16:00 UTC, ") && lines[2].hasSuffix(": no alert (the line above says what this volume can catch)"),
                "\(lines)")
        #expect(lines[3].hasPrefix("alerts about no injected incident: 1 ("), "\(lines)")
        #expect(lines[4] == "  [reason:expired_card] at 2025-05-16 06:00 UTC: 50.0% failing against 5.0% (10 of 20 attempts)", "\(lines)")
        // A scenario without incidents: every alert is a false one, and it says so.
        let none = IncidentCoverage.demoLines(windows: [], alerts: [stray], start: Self.day0, end: Self.at(hours: 24 * 30))
        #expect(none.first == "the scenario injects no incident: any alert is a false one")
        #expect(none.contains { $0.hasPrefix("alerts about no injected incident: 1 (") })
    }
}
