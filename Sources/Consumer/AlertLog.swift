import Events
import Foundation
import Marts

/// `alerts.ndjson` in a state directory: every alert the consumer raised, one JSON object per line (the
/// `alerts` topic's format). A rebuild (`--rebuild`) starts it afresh; reading drops repeated lines.
public enum AlertLog {
    public static let fileName = "alerts.ndjson"

    public static func read(stateDirectory: URL) -> [Alert] {
        guard let data = FileManager.default.contents(atPath: stateDirectory.appendingPathComponent(fileName).path) else { return [] }
        // A crash between raising an alert and the next checkpoint raises it again on restart: the same
        // line twice. Each transition is shown once.
        var seen = Set<Data>()
        let lines = data.split(separator: UInt8(ascii: "\n")).filter { seen.insert(Data($0)).inserted }
        let decoder = JSONDecoder()
        return lines.compactMap { line in
            guard let l = try? decoder.decode(Line.self, from: Data(line)), let state = Alert.State(rawValue: l.state),
                  let at = Timestamp(rfc3339: l.at), let since = Timestamp(rfc3339: l.firingSince) else { return nil }
            return Alert(rule: l.rule, scope: l.scope, state: state, at: at, firingSince: since, observedRate: l.observedRate ?? 0,
                         baselineRate: l.baselineRate ?? 0, attempts: l.attempts ?? 0, failures: l.failures ?? 0,
                         windowMinutes: l.windowMinutes ?? 0, shiftStart: l.shiftStarted.flatMap { Timestamp(rfc3339: $0) }, evidence: l.evidence,
                         resolvedWith: l.resolvedWith)
        }
    }
}

extension AlertLog {
    /// One line of the log, as `Alert.json` writes it (the `alerts` topic's format).
    struct Line: Decodable {
        var rule: String
        var scope: String
        var state: String
        var at: String
        var firingSince: String
        var observedRate: Double?
        var baselineRate: Double?
        var attempts: Int?
        var failures: Int?
        var windowMinutes: Int?
        var shiftStarted: String?
        var evidence: Double?
        var resolvedWith: String?

        enum CodingKeys: String, CodingKey {
            case rule, scope, state, at, attempts, failures, evidence
            case firingSince = "firing_since", observedRate = "observed_rate", baselineRate = "baseline_rate", windowMinutes = "window_minutes"
            case shiftStarted = "shift_started", resolvedWith = "resolved_with"
        }
    }
}
