/// The topics of the event contract (docs/events.md) with their default names: the one definition every
/// producer, consumer, test and tool uses.
public enum Topics {
    public static let billing = "billing"
    public static let payments = "payments"
    public static let engagement = "engagement"
    public static let customerRisk = "customer-risk"
    public static let alerts = "alerts"
    public static let deadLetter = "events-dlq"
    public static let inputs = [billing, payments, engagement]
    public static let outputs = [customerRisk, alerts, deadLetter]

    /// The input topics' names after `prefix` (`--topic-prefix`; none: the contract's names).
    public static func inputs(prefixedBy prefix: String) -> [InputTopic: String] {
        Dictionary(uniqueKeysWithValues: InputTopic.allCases.map { ($0, prefix + $0.rawValue) })
    }

    /// Why Kafka would refuse `name` as a topic name, in words, or nil for a legal one. Kafka's rule: 1 to 249
    /// characters, each a letter, a digit, '.', '_' or '-', and neither "." nor "..". (A name such as
    /// `rb.billing,payments=rb.payments` would otherwise reach the cluster, which refuses every message to it, or
    /// the embedded broker, which takes them into a topic nobody reads.)
    public static func problem(with name: String) -> String? {
        if name.isEmpty { return "a topic name cannot be empty" }
        if name == "." || name == ".." { return "'\(name)' cannot be a topic name" }
        if let c = name.unicodeScalars.first(where: { !isLegal($0) }) {
            return "'\(name)' is not a topic name: \(c == "," ? "',' separates names" : "'\(c)' is not allowed") (letters, digits, '.', '_' and '-' only)"
        }
        if name.utf8.count > 249 { return "a topic name has at most 249 characters, this one \(name.utf8.count)" }
        return nil
    }

    /// A cluster's topics for a message, internal ones (`__consumer_offsets`) left out: sorted, at most `limit` of
    /// them named ("none" for none).
    public static func listed(_ names: some Sequence<String>, limit: Int = 20) -> String {
        let shown = names.filter { !$0.hasPrefix("__") }.sorted()
        guard !shown.isEmpty else { return "none" }
        let more = shown.count - limit
        return shown.prefix(limit).joined(separator: ", ") + (more > 0 ? " and \(more) more" : "")
    }

    private static func isLegal(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }
}
