/// Writes events as events.md's JSON: one object, fixed field order, no whitespace, no trailing newline.
public enum EventEncoder {
    /// The event's JSON in an array of its own, sized to fit (the encoder reserves a generous bound while
    /// writing, which callers that keep many encoded events should not pay for in memory).
    public static func encode(_ event: Event) -> [UInt8] {
        var scratch = [UInt8]()
        encode(event, into: &scratch)
        var out = [UInt8]()
        out.reserveCapacity(scratch.count)
        out.append(contentsOf: scratch)
        return out
    }

    /// Appends the event's JSON to `out` (reuse one buffer to avoid allocations).
    ///
    /// Most events are written a word at a time (`WordWriter`) into a fixed region of the array's spare
    /// capacity, which is then cut to the bytes written. An event the word writer declines (a string that
    /// needs escaping, strings too long for the region, a year outside 0-9999) is written a byte at a time.
    public static func encode(_ event: Event, into out: inout [UInt8]) {
        // The region is appended outside the word writer's call: a closure that captured `event` copied it.
        let start = out.count
        out.append(addingCapacity: WordWriter.region) { $0.append(repeating: 0, count: WordWriter.region) }
        var span = out.mutableSpan
        // `@unsafe` only because some element types have invalid bit patterns; every byte is a valid UInt8.
        var region = unsafe span.mutableBytes
        let end = WordWriter.write(event, to: &region, at: start)
        out.removeSubrange((end ?? start)...)
        if end == nil { encodeByteByByte(event, into: &out) }
    }

    /// An encoder with a region of its own, kept between events: for loops that encode many, it saves what
    /// `encode(_:into:)` does per event to make the region in the output and cut it back (zeroing 1 KiB, and
    /// a range removal), at the cost of one copy of the written bytes.
    public struct Reusable {
        private var region = [UInt8](repeating: 0, count: WordWriter.region)

        public init() {}

        /// `encode(_:into:)` for an event that lies in the caller's storage (an array's element, say), passed
        /// `inout` only so that it is read where it lies: passed by value, the compiler copied it out first.
        /// The event is not changed.
        public mutating func encode(inPlace event: inout Event, into out: inout [UInt8]) {
            encode(event, into: &out)
        }

        /// Appends the event's JSON to `out`: the same bytes as `EventEncoder.encode(_:into:)`.
        public mutating func encode(_ event: Event, into out: inout [UInt8]) {
            var span = region.mutableSpan
            // `@unsafe` only because some element types have invalid bit patterns; every byte is a valid UInt8.
            var bytes = unsafe span.mutableBytes
            if let end = WordWriter.write(event, to: &bytes, at: 0) {
                out.append(contentsOf: region[..<end])
            } else {
                encodeByteByByte(event, into: &out)
            }
        }
    }

    /// The byte-at-a-time writer, which escapes strings (and checks the word writer in tests).
    ///
    /// The bytes are written into the array's spare capacity through an `OutputSpan`: one capacity
    /// reservation per event (a bound computed from its strings' lengths) instead of a capacity and
    /// uniqueness check per byte.
    static func encodeByteByByte(_ event: Event, into out: inout [UInt8]) {
        out.append(addingCapacity: capacityBound(event)) { o in write(event, to: &o) }
    }

    /// More than the event's JSON can take: every string escaped at the worst (6 bytes a byte) and
    /// room for all names, punctuation, numbers (20 characters each) and timestamps of the longest type.
    static func capacityBound(_ event: Event) -> Int { fixedBytes + 6 * stringBytes(event) }

    /// More than everything but the strings can take in the longest type.
    static let fixedBytes = 640

    /// The bytes of the event's strings.
    static func stringBytes(_ event: Event) -> Int {
        var strings = event.eventID.utf8.count + event.customerID.utf8.count
        switch event.payload {
        case let .customerSignedUp(_, industry, _, country, channel):
            strings += industry.utf8.count + country.utf8.count + channel.utf8.count
        case let .subscriptionStarted(sub, _, _), let .subscriptionPlanChanged(sub, _, _, _, _), let .subscriptionCanceled(sub, _, _, _):
            strings += sub.utf8.count
        case let .invoiceIssued(inv, sub, _, _, currency, _, _):
            strings += inv.utf8.count + sub.utf8.count + currency.utf8.count
        case let .invoicePaid(inv, _, _, currency, _), let .invoiceUncollectible(inv, _, _, currency, _):
            strings += inv.utf8.count + currency.utf8.count
        case let .paymentSucceeded(pay, inv, _, _, currency, _), let .paymentFailed(pay, inv, _, _, currency, _, _, _):
            strings += pay.utf8.count + inv.utf8.count + currency.utf8.count
        case .paymentMethodUpdated, .cancelIntent:
            break
        case let .featureUsed(feature, _, session):
            strings += feature.utf8.count + session.utf8.count
        }
        return strings
    }

    static func write(_ event: Event, to o: inout OutputSpan<UInt8>) {
        o.raw("{\"schema\":1,\"event_id\":")
        o.jsonString(event.eventID)
        o.raw(",\"type\":\"")
        o.raw(event.type.wireName)
        o.raw("\",\"occurred_at\":\"")
        event.occurredAt.appendRFC3339(to: &o)
        o.raw("\",\"customer_id\":")
        o.jsonString(event.customerID)
        switch event.payload {
        case let .customerSignedUp(plan, industry, size, country, channel):
            o.field("plan", plan.wireName); o.field("industry", industry); o.field("company_size", size.rawValue)
            o.field("country", country); o.field("channel", channel)
        case let .subscriptionStarted(sub, plan, mrr):
            o.field("subscription_id", sub); o.field("plan", plan.wireName); o.field("mrr_cents", mrr)
        case let .subscriptionPlanChanged(sub, from, to, fromMrr, toMrr):
            o.field("subscription_id", sub); o.field("from_plan", from.wireName); o.field("to_plan", to.wireName)
            o.field("from_mrr_cents", fromMrr); o.field("to_mrr_cents", toMrr)
        case let .subscriptionCanceled(sub, plan, mrr, cancellation):
            o.field("subscription_id", sub); o.field("plan", plan.wireName); o.field("mrr_cents", mrr)
            o.field("cancellation", cancellation.rawValue)
        case let .invoiceIssued(inv, sub, plan, amount, currency, start, end):
            o.field("invoice_id", inv); o.field("subscription_id", sub); o.field("plan", plan.wireName)
            o.field("amount_cents", amount); o.field("currency", currency)
            o.field("period_start", start); o.field("period_end", end)
        case let .invoicePaid(inv, plan, amount, currency, attempts), let .invoiceUncollectible(inv, plan, amount, currency, attempts):
            o.field("invoice_id", inv); o.field("plan", plan.wireName); o.field("amount_cents", amount)
            o.field("currency", currency); o.field("attempts", Int64(attempts))
        case let .paymentSucceeded(pay, inv, plan, amount, currency, attempt):
            o.field("payment_id", pay); o.field("invoice_id", inv); o.field("plan", plan.wireName)
            o.field("amount_cents", amount); o.field("currency", currency); o.field("attempt", Int64(attempt))
        case let .paymentFailed(pay, inv, plan, amount, currency, attempt, reason, next):
            o.field("payment_id", pay); o.field("invoice_id", inv); o.field("plan", plan.wireName)
            o.field("amount_cents", amount); o.field("currency", currency); o.field("attempt", Int64(attempt))
            o.field("failure_reason", reason.rawValue); o.field("decline_type", reason.declineType.rawValue)
            o.raw(",\"next_retry_at\":")
            if let next {
                o.append(0x22)
                next.appendRFC3339(to: &o)
                o.append(0x22)
            } else {
                o.raw("null")
            }
        case let .paymentMethodUpdated(method):
            o.field("payment_method", method.rawValue)
        case let .featureUsed(feature, core, session):
            o.field("feature", feature)
            o.raw(core ? ",\"core_value\":true" : ",\"core_value\":false")
            o.field("session_id", session)
        case let .cancelIntent(source):
            o.field("source", source.rawValue)
        }
        o.append(UInt8(ascii: "}"))
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

        /// A JSON string literal, escaped as event fields are.
        public mutating func string(_ s: String) {
            out.append(addingCapacity: 6 * s.utf8.count + 2) { $0.jsonString(s) }
        }

        public mutating func appendInt(_ v: Int64) {
            out.append(addingCapacity: 20) { $0.appendInt(v) }
        }
    }
}

extension OutputSpan<UInt8> {
    @inline(__always)
    mutating func raw(_ s: StaticString) {
        s.withUTF8Buffer { for c in $0 { append(c) } }
    }

    /// A JSON string: `"`, `\\` and control characters escaped (the last as `\\u00XX`), everything else as it is.
    @inline(__always)
    mutating func jsonString(_ s: String) {
        // Copied while checked, in one loop without an early exit (the escape test does not branch); a value
        // that needed an escape is taken back and written the slow way.
        let bytes = s.utf8.span
        append(0x22)
        var bad = false
        for i in bytes.indices {
            let c = bytes[i]
            bad = bad || c < 0x20 || c == 0x22 || c == 0x5C
            append(c)
        }
        if bad {
            removeLast(bytes.count + 1)
            escapedString(s)
            return
        }
        append(0x22)
    }

    mutating func escapedString(_ s: String) {
        append(0x22)
        for c in s.utf8 {
            switch c {
            case 0x22: append(0x5C); append(0x22)
            case 0x5C: append(0x5C); append(0x5C)
            case 0..<0x20:
                append(0x5C); append(0x75); append(0x30); append(0x30)
                append(hexDigit(c >> 4)); append(hexDigit(c & 15))
            default: append(c)
            }
        }
        append(0x22)
    }

    /// `,"name":`
    @inline(__always)
    mutating func memberName(_ name: StaticString) {
        append(UInt8(ascii: ",")); append(0x22)
        raw(name)
        append(0x22); append(UInt8(ascii: ":"))
    }

    @inline(__always)
    mutating func field(_ name: StaticString, _ value: String) {
        memberName(name)
        jsonString(value)
    }

    @inline(__always)
    mutating func field(_ name: StaticString, _ value: StaticString) {
        memberName(name)
        append(0x22)
        raw(value)
        append(0x22)
    }

    @inline(__always)
    mutating func field(_ name: StaticString, _ value: Day) {
        memberName(name)
        append(0x22)
        value.appendISO(to: &self)
        append(0x22)
    }

    @inline(__always)
    mutating func field(_ name: StaticString, _ value: Int64) {
        memberName(name)
        appendInt(value)
    }

    mutating func appendInt(_ v: Int64) {
        var x = v.magnitude
        if v < 0 { append(UInt8(ascii: "-")) }
        var div: UInt64 = 1
        while div <= x / 10 { div *= 10 }
        while div > 0 {
            append(UInt8(truncatingIfNeeded: 0x30 + x / div))
            x %= div
            div /= 10
        }
    }
}

@inline(__always) private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }

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
