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
}
