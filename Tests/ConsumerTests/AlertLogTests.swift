import Consumer
import Events
import Foundation
import Marts
import Testing
import TestSupport

/// The alert log read back as it was written (`Alert.json` a line), every field included: the dashboard and the
/// report show what the consumer raised.
@Suite struct AlertLogTests {
    @Test func everyFieldOfAnAlertSurvivesTheLog() throws {
        let at = Timestamp(year: 2025, month: 3, day: 28, hour: 5, minute: 17)
        let firing = Alert(rule: "failure-rate-shift", scope: "plan:premium/reason:card_velocity_exceeded", state: .firing,
                           at: Timestamp(ms: at.ms - 3_600_000), firingSince: Timestamp(ms: at.ms - 3_600_000), observedRate: 0.125,
                           baselineRate: 0.002, attempts: 40, failures: 5, windowMinutes: 90, shiftStart: Timestamp(ms: at.ms - 5_400_000),
                           evidence: 14.5)
        var resolved = firing
        resolved.state = .resolved
        resolved.at = at
        resolved.evidence = 1.25
        resolved.resolvedWith = "reason:card_velocity_exceeded"
        let plain = Alert(rule: "spike", scope: "overall", state: .firing, at: at, firingSince: at, observedRate: 0.5, baselineRate: 0.05,
                          attempts: 20, failures: 10, windowMinutes: 60)
        let dir = tempDir()
        let lines = [firing, resolved, plain].map(\.json).joined(separator: "\n") + "\n"
        try lines.write(to: dir.appendingPathComponent(AlertLog.fileName), atomically: true, encoding: .utf8)
        #expect(resolved.json.contains("\"resolved_with\":\"reason:card_velocity_exceeded\"") && !firing.json.contains("resolved_with"))
        let read = AlertLog.read(stateDirectory: dir)
        #expect(read.map(\.json) == [firing, resolved, plain].map(\.json))
        #expect(read.map(\.resolvedWith) == [nil, "reason:card_velocity_exceeded", nil])
    }
}
