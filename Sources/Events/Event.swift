/// The event types of events.md, with their wire names.
public enum EventType: String, Sendable, CaseIterable, Hashable {
    case customerSignedUp = "customer.signed_up"
    case subscriptionStarted = "subscription.started"
    case subscriptionPlanChanged = "subscription.plan_changed"
    case subscriptionCanceled = "subscription.canceled"
    case invoiceIssued = "invoice.issued"
    case invoicePaid = "invoice.paid"
    case invoiceUncollectible = "invoice.uncollectible"
    case paymentSucceeded = "payment.succeeded"
    case paymentFailed = "payment.failed"
    case paymentMethodUpdated = "payment_method.updated"
    case featureUsed = "feature.used"
    case cancelIntent = "cancel.intent"

    public var topic: InputTopic {
        switch self {
        case .customerSignedUp, .subscriptionStarted, .subscriptionPlanChanged, .subscriptionCanceled,
             .invoiceIssued, .invoicePaid, .invoiceUncollectible: .billing
        case .paymentSucceeded, .paymentFailed, .paymentMethodUpdated: .payments
        case .featureUsed, .cancelIntent: .engagement
        }
    }
}

/// The three input topics (default names).
public enum InputTopic: String, Sendable, CaseIterable, Hashable {
    case billing, payments, engagement

    /// The position in `allCases` (for tables indexed by topic, without hashing).
    public var ordinal: Int {
        switch self {
        case .billing: 0
        case .payments: 1
        case .engagement: 2
        }
    }
}

extension EventType {
    /// The position in `allCases` (for tables indexed by type, without hashing).
    public var ordinal: Int {
        switch self {
        case .customerSignedUp: 0
        case .subscriptionStarted: 1
        case .subscriptionPlanChanged: 2
        case .subscriptionCanceled: 3
        case .invoiceIssued: 4
        case .invoicePaid: 5
        case .invoiceUncollectible: 6
        case .paymentSucceeded: 7
        case .paymentFailed: 8
        case .paymentMethodUpdated: 9
        case .featureUsed: 10
        case .cancelIntent: 11
        }
    }
}

/// One accepted event: the envelope plus its type's fields.
public struct Event: Sendable, Hashable {
    public var eventID: String
    public var occurredAt: Timestamp
    public var customerID: String
    public var payload: Payload

    public init(eventID: String, occurredAt: Timestamp, customerID: String, payload: Payload) {
        self.eventID = eventID
        self.occurredAt = occurredAt
        self.customerID = customerID
        self.payload = payload
    }

    public var type: EventType { payload.type }
    public var topic: InputTopic { payload.type.topic }

    public enum Payload: Sendable, Hashable {
        case customerSignedUp(plan: Plan, industry: String, companySize: CompanySize, country: String, channel: String)
        case subscriptionStarted(subscriptionID: String, plan: Plan, mrrCents: Cents)
        case subscriptionPlanChanged(subscriptionID: String, fromPlan: Plan, toPlan: Plan, fromMrrCents: Cents, toMrrCents: Cents)
        case subscriptionCanceled(subscriptionID: String, plan: Plan, mrrCents: Cents, cancellation: Cancellation)
        case invoiceIssued(invoiceID: String, subscriptionID: String, plan: Plan, amountCents: Cents, currency: String,
                           periodStart: Day, periodEnd: Day)
        case invoicePaid(invoiceID: String, plan: Plan, amountCents: Cents, currency: String, attempts: Int)
        case invoiceUncollectible(invoiceID: String, plan: Plan, amountCents: Cents, currency: String, attempts: Int)
        case paymentSucceeded(paymentID: String, invoiceID: String, plan: Plan, amountCents: Cents, currency: String, attempt: Int)
        case paymentFailed(paymentID: String, invoiceID: String, plan: Plan, amountCents: Cents, currency: String, attempt: Int,
                           failureReason: FailureReason, nextRetryAt: Timestamp?)
        case paymentMethodUpdated(paymentMethod: PaymentMethod)
        case featureUsed(feature: String, coreValue: Bool, sessionID: String)
        case cancelIntent(source: CancelSource)

        public var type: EventType {
            switch self {
            case .customerSignedUp: .customerSignedUp
            case .subscriptionStarted: .subscriptionStarted
            case .subscriptionPlanChanged: .subscriptionPlanChanged
            case .subscriptionCanceled: .subscriptionCanceled
            case .invoiceIssued: .invoiceIssued
            case .invoicePaid: .invoicePaid
            case .invoiceUncollectible: .invoiceUncollectible
            case .paymentSucceeded: .paymentSucceeded
            case .paymentFailed: .paymentFailed
            case .paymentMethodUpdated: .paymentMethodUpdated
            case .featureUsed: .featureUsed
            case .cancelIntent: .cancelIntent
            }
        }
    }
}
