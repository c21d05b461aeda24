/// Writes events as events.md's JSON: one object, fixed field order, no whitespace, no trailing newline.
public enum EventEncoder {
    public static func encode(_ event: Event) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(320)
        encode(event, into: &out)
        return out
    }

    /// Appends the event's JSON to `out` (reuse one buffer to avoid allocations).
    public static func encode(_ event: Event, into out: inout [UInt8]) {
        var w = Writer(out: consume out)
        w.raw("{\"schema\":1,\"event_id\":")
        w.string(event.eventID)
        w.raw(",\"type\":\"")
        w.raw(event.type.wireName)
        w.raw("\",\"occurred_at\":\"")
        event.occurredAt.appendRFC3339(to: &w.out)
        w.raw("\",\"customer_id\":")
        w.string(event.customerID)
        switch event.payload {
        case let .customerSignedUp(plan, industry, size, country, channel):
            w.field("plan", plan.wireName); w.field("industry", industry); w.field("company_size", size.rawValue)
            w.field("country", country); w.field("channel", channel)
        case let .subscriptionStarted(sub, plan, mrr):
            w.field("subscription_id", sub); w.field("plan", plan.wireName); w.field("mrr_cents", mrr)
        case let .subscriptionPlanChanged(sub, from, to, fromMrr, toMrr):
            w.field("subscription_id", sub); w.field("from_plan", from.rawValue); w.field("to_plan", to.rawValue)
            w.field("from_mrr_cents", fromMrr); w.field("to_mrr_cents", toMrr)
        case let .subscriptionCanceled(sub, plan, mrr, cancellation):
            w.field("subscription_id", sub); w.field("plan", plan.wireName); w.field("mrr_cents", mrr)
            w.field("cancellation", cancellation.rawValue)
        case let .invoiceIssued(inv, sub, plan, amount, currency, start, end):
            w.field("invoice_id", inv); w.field("subscription_id", sub); w.field("plan", plan.wireName)
            w.field("amount_cents", amount); w.field("currency", currency)
            w.field("period_start", start.description); w.field("period_end", end.description)
        case let .invoicePaid(inv, plan, amount, currency, attempts), let .invoiceUncollectible(inv, plan, amount, currency, attempts):
            w.field("invoice_id", inv); w.field("plan", plan.wireName); w.field("amount_cents", amount)
            w.field("currency", currency); w.field("attempts", Int64(attempts))
        case let .paymentSucceeded(pay, inv, plan, amount, currency, attempt):
            w.field("payment_id", pay); w.field("invoice_id", inv); w.field("plan", plan.wireName)
            w.field("amount_cents", amount); w.field("currency", currency); w.field("attempt", Int64(attempt))
        case let .paymentFailed(pay, inv, plan, amount, currency, attempt, reason, next):
            w.field("payment_id", pay); w.field("invoice_id", inv); w.field("plan", plan.wireName)
            w.field("amount_cents", amount); w.field("currency", currency); w.field("attempt", Int64(attempt))
            w.field("failure_reason", reason.rawValue); w.field("decline_type", reason.declineType.rawValue)
            w.raw(",\"next_retry_at\":")
            if let next {
                w.out.append(0x22)
                next.appendRFC3339(to: &w.out)
                w.out.append(0x22)
            } else {
                w.raw("null")
            }
        case let .paymentMethodUpdated(method):
            w.field("payment_method", method.rawValue)
        case let .featureUsed(feature, core, session):
            w.field("feature", feature)
            w.raw(core ? ",\"core_value\":true" : ",\"core_value\":false")
            w.field("session_id", session)
        case let .cancelIntent(source):
            w.field("source", source.rawValue)
        }
        w.out.append(UInt8(ascii: "}"))
        out = w.out
    }

    public struct Writer {
        public var out: [UInt8]
        public init(out: [UInt8]) { self.out = out }

        public mutating func raw(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }

        public mutating func raw(_ s: String) {
            out.append(contentsOf: s.utf8)
        }

        public mutating func string(_ s: String) {
            out.append(0x22)
            // Most values need no escaping: copied as they are, checked on the way (on the contiguous bytes:
            // `String.UTF8View`'s own iteration is several times slower); at the first byte that needs an
            // escape, what was copied is taken back and the value written the slow way.
            let bytes = s.utf8.span
            let start = out.count
            var clean = true
            for i in 0..<bytes.count {
                let c = bytes[i]
                if c < 0x20 || c == 0x22 || c == 0x5C {
                    clean = false
                    break
                }
                out.append(c)
            }
            if clean {
                out.append(0x22)
                return
            }
            out.removeSubrange(start...)
            for c in s.utf8 {
                switch c {
                case 0x22: out.append(0x5C); out.append(0x22)
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 15)]])
                default: out.append(c)
                }
            }
            out.append(0x22)
        }

        /// `,"name":` before a member's value.
        mutating func memberName(_ name: StaticString) {
            out.append(UInt8(ascii: ","))
            out.append(0x22)
            raw(name)
            out.append(0x22)
            out.append(UInt8(ascii: ":"))
        }

        public mutating func field(_ name: StaticString, _ value: String) {
            memberName(name)
            string(value)
        }

        /// A value that needs no escaping (an enumeration's wire name).
        public mutating func field(_ name: StaticString, _ value: StaticString) {
            memberName(name)
            out.append(0x22)
            raw(value)
            out.append(0x22)
        }

        public mutating func field(_ name: StaticString, _ value: Int64) {
            memberName(name)
            appendInt(value)
        }

        public mutating func appendInt(_ v: Int64) {
            if v < 0 {
                out.append(UInt8(ascii: "-"))
                appendInt(v == .min ? Int64.max : -v)  // never reached with valid events
                return
            }
            var div: Int64 = 1
            while div <= v / 10 { div *= 10 }
            var x = v
            while div > 0 {
                out.append(UInt8(0x30 + x / div))
                x %= div
                div /= 10
            }
        }
    }
}

/// A JSON string literal (quotes included) for `s`, escaped as the encoder escapes event fields.
public func jsonString(_ s: String) -> String {
    var w = EventEncoder.Writer(out: [])
    w.string(s)
    return String(decoding: w.out, as: UTF8.self)
}

extension EventType {
    /// The wire name as a static string (the encoder copies it without checking for escapes).
    public var wireName: StaticString {
        switch self {
        case .customerSignedUp: "customer.signed_up"
        case .subscriptionStarted: "subscription.started"
        case .subscriptionPlanChanged: "subscription.plan_changed"
        case .subscriptionCanceled: "subscription.canceled"
        case .invoiceIssued: "invoice.issued"
        case .invoicePaid: "invoice.paid"
        case .invoiceUncollectible: "invoice.uncollectible"
        case .paymentSucceeded: "payment.succeeded"
        case .paymentFailed: "payment.failed"
        case .paymentMethodUpdated: "payment_method.updated"
        case .featureUsed: "feature.used"
        case .cancelIntent: "cancel.intent"
        }
    }
}

extension Plan {
    public var wireName: StaticString {
        switch self {
        case .free: "free"
        case .standard: "standard"
        case .premium: "premium"
        case .enterprise: "enterprise"
        }
    }
}
