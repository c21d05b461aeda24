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
        return lines.compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let rule = o["rule"] as? String, let scope = o["scope"] as? String,
                  let state = (o["state"] as? String).flatMap(Alert.State.init(rawValue:)),
                  let at = (o["at"] as? String).flatMap(Timestamp.init(rfc3339:)),
                  let since = (o["firing_since"] as? String).flatMap(Timestamp.init(rfc3339:)) else { return nil }
            func num(_ k: String) -> Double { (o[k] as? NSNumber)?.doubleValue ?? 0 }
            return Alert(rule: rule, scope: scope, state: state, at: at, firingSince: since, observedRate: num("observed_rate"),
                         baselineRate: num("baseline_rate"), attempts: Int(num("attempts")), failures: Int(num("failures")),
                         windowMinutes: Int(num("window_minutes")))
        }
    }
}
