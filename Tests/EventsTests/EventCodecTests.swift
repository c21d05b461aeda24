import Events
import Foundation
import Testing

let t0 = Timestamp(rfc3339: "2025-03-14T10:22:31.123Z")!

let samples: [Event] = [
    Event(eventID: "e1", occurredAt: t0, customerID: "cus_1",
          payload: .customerSignedUp(plan: .free, industry: "Healthcare", companySize: .midMarket, country: "DE", channel: "organic")),
    Event(eventID: "e2", occurredAt: t0, customerID: "cus_1", payload: .subscriptionStarted(subscriptionID: "sub_1", plan: .premium, mrrCents: 9900)),
    Event(eventID: "e3", occurredAt: t0, customerID: "cus_1",
          payload: .subscriptionPlanChanged(subscriptionID: "sub_1", fromPlan: .premium, toPlan: .enterprise, fromMrrCents: 9900, toMrrCents: 49900)),
    Event(eventID: "e4", occurredAt: t0, customerID: "cus_1",
          payload: .subscriptionCanceled(subscriptionID: "sub_1", plan: .enterprise, mrrCents: 49900, cancellation: .involuntary)),
    Event(eventID: "e5", occurredAt: t0, customerID: "cus_1",
          payload: .invoiceIssued(invoiceID: "in_1", subscriptionID: "sub_1", plan: .premium, amountCents: 9900, currency: "USD",
                                  periodStart: Day(iso: Array("2025-03-14".utf8))!, periodEnd: Day(iso: Array("2025-04-13".utf8))!)),
    Event(eventID: "e6", occurredAt: t0, customerID: "cus_1", payload: .invoicePaid(invoiceID: "in_1", plan: .premium, amountCents: 9900, currency: "USD", attempts: 2)),
    Event(eventID: "e7", occurredAt: t0, customerID: "cus_1", payload: .invoiceUncollectible(invoiceID: "in_1", plan: .premium, amountCents: 9900, currency: "USD", attempts: 4)),
    Event(eventID: "e8", occurredAt: t0, customerID: "cus_1",
          payload: .paymentSucceeded(paymentID: "pay_1", invoiceID: "in_1", plan: .premium, amountCents: 9900, currency: "USD", attempt: 1)),
    Event(eventID: "e9", occurredAt: t0, customerID: "cus_1",
          payload: .paymentFailed(paymentID: "pay_2", invoiceID: "in_1", plan: .premium, amountCents: 9900, currency: "USD", attempt: 1,
                                  failureReason: .expiredCard, nextRetryAt: t0.adding(days: 3))),
    Event(eventID: "e10", occurredAt: t0, customerID: "cus_1",
          payload: .paymentFailed(paymentID: "pay_3", invoiceID: "in_1", plan: .premium, amountCents: 9900, currency: "USD", attempt: 4,
                                  failureReason: .insufficientFunds, nextRetryAt: nil)),
    Event(eventID: "e11", occurredAt: t0, customerID: "cus_1", payload: .paymentMethodUpdated(paymentMethod: .sepaDebit)),
    Event(eventID: "e12", occurredAt: t0, customerID: "cus_1", payload: .featureUsed(feature: "dashboards \"pro\"", coreValue: true, sessionID: "s_1")),
    Event(eventID: "e13", occurredAt: t0, customerID: "cus_1", payload: .cancelIntent(source: .supportTicket)),
]

@Suite struct EventCodecTests {
    @Test(arguments: samples)
    func everyTypeRoundTrips(_ event: Event) throws {
        let bytes = EventEncoder.encode(event)
        let decoded = try EventDecoder.decode(bytes, topic: event.topic, key: Array(event.customerID.utf8)).get()
        #expect(decoded == event)
        #expect(bytes.last == UInt8(ascii: "}"))
    }

    @Test func encodingFollowsTheContractByteForByte() {
        let text = String(decoding: EventEncoder.encode(samples[9]), as: UTF8.self)
        #expect(text == #"{"schema":1,"event_id":"e10","type":"payment.failed","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"cus_1","payment_id":"pay_3","invoice_id":"in_1","plan":"premium","amount_cents":9900,"currency":"USD","attempt":4,"failure_reason":"insufficient_funds","decline_type":"soft","next_retry_at":null}"#)
    }

    @Test func timestampsAndMonths() throws {
        #expect(t0.description == "2025-03-14T10:22:31.123Z")
        #expect(t0.month.description == "2025-03")
        #expect(Timestamp(rfc3339: "2024-02-29T23:59:59.999Z")!.month.next.description == "2024-03")
        #expect(Timestamp(rfc3339: "2023-02-29T00:00:00.000Z") == nil)
        #expect(Timestamp(rfc3339: "1999-12-31T23:59:59.999Z") == nil)
        #expect(Timestamp(rfc3339: "2100-01-01T00:00:00.000Z") == nil)
        #expect(Timestamp(rfc3339: "2025-03-14T24:00:00.000Z") == nil)
        #expect(Timestamp(rfc3339: "2025-03-14T10:22:31Z") == nil)
        // Every day of 2000-2099 survives a format/parse round trip.
        var t = Timestamp(year: 2000, month: 1, day: 1, hour: 13, minute: 7, second: 9, millisecond: 42)
        while t.month.year < 2100 {
            #expect(Timestamp(rfc3339: t.description) == t)
            t = t.adding(days: 1)
        }
    }

    @Test func unknownFieldsAndNestingAreIgnored() throws {
        let json = #"{"schema":1,"extra":{"a":[1,2,{"b":null}],"c":"x"},"event_id":"e1","type":"cancel.intent","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","source":"cancel_page","n":-1.5e3}"#
        let e = try EventDecoder.decode(Array(json.utf8), topic: .engagement).get()
        #expect(e.payload == .cancelIntent(source: .cancelPage))
    }

    @Test func escapedStringsDecode() throws {
        let json = #"{"schema":1,"event_id":"e1","type":"feature.used","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","feature":"caf\u00e9 \ud83d\ude00 \"q\"","core_value":false,"session_id":"s"}"#
        let e = try EventDecoder.decode(Array(json.utf8), topic: .engagement).get()
        #expect(e.payload == .featureUsed(feature: "café 😀 \"q\"", coreValue: false, sessionID: "s"))
    }

    @Test(arguments: ["plain", "café 😀", "quote \" in", "back\\slash", "\"\\"])
    func stringsThatNeedEscapingAndThoseThatDoNotRoundTrip(_ text: String) throws {
        let event = Event(eventID: "e1", occurredAt: Timestamp(year: 2025, month: 3, day: 14), customerID: "c1",
                          payload: .featureUsed(feature: text, coreValue: false, sessionID: "s"))
        let bytes = EventEncoder.encode(event)
        #expect(!bytes.contains { $0 < 0x20 }, "raw control byte in \(String(decoding: bytes, as: UTF8.self))")
        #expect(try EventDecoder.decode(bytes, topic: .engagement).get() == event)
    }

    @Test func ordinalsArePositionsInAllCases() {
        #expect(EventType.allCases.map(\.ordinal) == Array(EventType.allCases.indices))
        #expect(InputTopic.allCases.map(\.ordinal) == Array(InputTopic.allCases.indices))
    }

    @Test func staticWireNamesAreTheRawValues() {
        for t in EventType.allCases { #expect(t.wireName.description == t.rawValue) }
        for p in Plan.allCases { #expect(p.wireName.description == p.rawValue) }
    }

    @Test func controlCharactersAreWrittenAsUnicodeEscapes() {
        var w = EventEncoder.Writer(out: [])
        w.string("a\tb\u{1}\"\\")
        #expect(String(decoding: w.out, as: UTF8.self) == #""a\u0009b\u0001\"\\""#)
    }
}

/// One case for each kind of bad input: the rejection code it must get.
@Suite struct EventValidationTests {
    static let valid = #"{"schema":1,"event_id":"e1","type":"payment.succeeded","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"cus_1","payment_id":"p","invoice_id":"i","plan":"standard","amount_cents":100,"currency":"USD","attempt":1}"#

    static func replacing(_ a: String, _ b: String) -> [UInt8] { Array(valid.replacingOccurrences(of: a, with: b).utf8) }

    static let cases: [(String, [UInt8], Rejection.Code)] = [
        ("invalid UTF-8", Array(valid.utf8.prefix(60)) + [0xC3, 0x28] + Array(valid.utf8.dropFirst(60)), .invalidUTF8),
        ("invalid UTF-8 inside a string", replacing("\"USD\"", "\"US\u{FFFD}\"").map { $0 == 0xBD ? 0xFF : $0 }, .invalidUTF8),
        ("truncated JSON", Array(valid.utf8.prefix(80)), .invalidJSON),
        ("not an object", Array("[1,2,3]".utf8), .notAnObject),
        ("deeply nested", replacing("\"schema\":1", "\"x\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + ",\"schema\":1"), .invalidJSON),
        ("oversized value", Array(valid.utf8.dropLast()) + Array(",\"pad\":\"".utf8) + Array(repeating: UInt8(ascii: "a"), count: 70_000) + Array("\"}".utf8), .tooLarge),
        ("NaN", replacing("\"amount_cents\":100", "\"amount_cents\":NaN"), .invalidJSON),
        ("huge number", replacing("\"amount_cents\":100", "\"amount_cents\":9007199254740993"), .invalidValue),
        ("negative cents", replacing("\"amount_cents\":100", "\"amount_cents\":-100"), .invalidValue),
        ("fractional cents", replacing("\"amount_cents\":100", "\"amount_cents\":100.5"), .invalidValue),
        ("exponent cents", replacing("\"amount_cents\":100", "\"amount_cents\":1e2"), .invalidValue),
        ("cents as string", replacing("\"amount_cents\":100", "\"amount_cents\":\"100\""), .wrongType),
        ("unknown schema", replacing("\"schema\":1", "\"schema\":2"), .unsupportedSchema),
        ("schema as string", replacing("\"schema\":1", "\"schema\":\"1\""), .unsupportedSchema),
        ("unknown type", replacing("payment.succeeded", "payment.refunded"), .unknownType),
        ("missing field", replacing(",\"invoice_id\":\"i\"", ""), .missingField),
        ("year 0001", replacing("2025-03-14T10:22:31.123Z", "0001-03-14T10:22:31.123Z"), .invalidTime),
        ("year 9999", replacing("2025-03-14T10:22:31.123Z", "9999-03-14T10:22:31.123Z"), .invalidTime),
        ("impossible date", replacing("2025-03-14T10:22:31.123Z", "2025-02-30T10:22:31.123Z"), .invalidTime),
        ("markup in id", replacing("\"cus_1\"", "\"<script>alert(1)</script>\""), .invalidValue),
        ("control character in text", replacing("\"USD\"", "\"US\\u0007\""), .invalidValue),
        ("empty string", replacing("\"USD\"", "\"\""), .invalidValue),
        ("repeated key", replacing("\"plan\":\"standard\"", "\"plan\":\"standard\",\"plan\":\"premium\""), .repeatedKey),
        ("repeated unknown key", replacing("\"plan\":\"standard\"", "\"plan\":\"standard\",\"z\":1,\"z\":2"), .repeatedKey),
        ("attempt zero", replacing("\"attempt\":1", "\"attempt\":0"), .invalidValue),
        ("unknown plan", replacing("\"standard\"", "\"gold\""), .invalidValue),
        ("trailing garbage", Array(valid.utf8) + Array("x".utf8), .invalidJSON),
        ("lone surrogate", replacing("\"USD\"", "\"\\ud800\""), .invalidUTF8),
        ("leading zero", replacing("\"amount_cents\":100", "\"amount_cents\":0100"), .invalidJSON),
        ("empty", [], .invalidJSON),
        ("id too long", replacing("\"e1\"", "\"" + String(repeating: "e", count: 129) + "\""), .invalidValue),
    ]

    @Test(arguments: cases.indices)
    func badInputIsRejectedWithItsReason(_ i: Int) {
        let (name, bytes, code) = Self.cases[i]
        switch EventDecoder.decode(bytes, topic: .payments) {
        case .success: Issue.record("\(name): accepted")
        case let .failure(r): #expect(r.code == code, "\(name): \(r)")
        }
    }

    @Test func validBaselineIsAccepted() throws {
        _ = try EventDecoder.decode(Array(Self.valid.utf8), topic: .payments, key: Array("cus_1".utf8)).get()
    }

    @Test func wrongTopicAndKeyMismatchAreRejected() {
        #expect(EventDecoder.decode(Array(Self.valid.utf8), topic: .billing).failureCode == .wrongTopic)
        #expect(EventDecoder.decode(Array(Self.valid.utf8), topic: .payments, key: Array("cus_2".utf8)).failureCode == .keyMismatch)
    }

    @Test func mismatchedDeclineTypeIsRejected() {
        let text = String(decoding: EventEncoder.encode(samples[8]), as: UTF8.self).replacingOccurrences(of: "\"hard\"", with: "\"soft\"")
        #expect(EventDecoder.decode(Array(text.utf8), topic: .payments).failureCode == .invalidValue)
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var rng = SplitMix64(seed: 7)
        let base = Array(Self.valid.utf8)
        for _ in 0..<20_000 {
            var b = base
            let edits = Int(rng.next() % 6) + 1
            for _ in 0..<edits {
                let i = Int(rng.next() % UInt64(b.count))
                switch rng.next() % 3 {
                case 0: b[i] = UInt8(truncatingIfNeeded: rng.next())
                case 1: b.remove(at: i)
                default: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: i)
                }
                if b.isEmpty { b = base }
            }
            _ = EventDecoder.decode(b, topic: .payments)
        }
    }
}

/// SplitMix64: the same numbers on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Result where Failure == Rejection {
    var failureCode: Rejection.Code? {
        if case let .failure(r) = self { return r.code }
        return nil
    }
}

/// The encoder writes into spare capacity reserved from a bound on the event's length; these check the bound
/// holds for the worst strings and that strings are escaped as a plain reference escapes them.
@Suite struct EncoderBoundTests {
    static let idAlphabet = Array("abcXYZ019_-.:")
    static let textAlphabet: [String] = ["a", "Z", "0", " ", "\"", "\\", "/", "é", "😀", "\u{a0}"]
    static let anyAlphabet: [String] = textAlphabet + ["\u{0}", "\u{1f}", "\n", "\u{7f}", "\u{85}"]

    static func random(_ alphabet: [String], _ lengths: ClosedRange<Int>, _ rng: inout Xorshift) -> String {
        (0..<rng.int(lengths)).map { _ in alphabet[rng.int(0...(alphabet.count - 1))] }.joined()
    }

    static func event(_ rng: inout Xorshift, round: Int, text: (inout Xorshift) -> String, id: (inout Xorshift) -> String) -> Event {
        let t = Timestamp(ms: Int64(rng.int(946_684_800_000...4_099_000_000_000)))
        let amount = Int64(rng.int(0...(1 << 53)))
        let payloads: [Event.Payload] = [
            .customerSignedUp(plan: .free, industry: text(&rng), companySize: .smb, country: text(&rng), channel: text(&rng)),
            .invoiceIssued(invoiceID: text(&rng), subscriptionID: text(&rng), plan: .standard, amountCents: amount, currency: text(&rng),
                           periodStart: Day(t), periodEnd: Day(t.adding(days: 31))),
            .paymentFailed(paymentID: text(&rng), invoiceID: text(&rng), plan: .enterprise, amountCents: amount, currency: text(&rng),
                           attempt: rng.int(1...9), failureReason: .gatewayTimeout, nextRetryAt: round % 2 == 0 ? t : nil),
            .featureUsed(feature: text(&rng), coreValue: true, sessionID: text(&rng)),
        ]
        return Event(eventID: id(&rng), occurredAt: t, customerID: id(&rng), payload: payloads[round % payloads.count])
    }

    @Test func validEventsWithAwkwardTextRoundTrip() throws {
        var rng = Xorshift(seed: 5)
        for round in 0..<4_000 {
            let long = round % 10 == 0
            let e = Self.event(&rng, round: round, text: { Self.random(Self.textAlphabet, 1...(long ? 60 : 12), &$0) },
                               id: { r in String((0..<r.int(1...(long ? 64 : 16))).map { _ in Self.idAlphabet[r.int(0...12)] }) })
            let bytes = EventEncoder.encode(e)
            let decoded = try EventDecoder.decode(bytes, topic: e.topic, key: Array(e.customerID.utf8)).get()
            #expect(decoded == e)
        }
    }

    /// JSON escaping as events.md asks for it, written out plainly for comparison.
    static func referenceEscape(_ s: String) -> String {
        var out: [UInt8] = [0x22]
        for c in s.utf8 {
            switch c {
            case 0x22: out += Array("\\\"".utf8)
            case 0x5C: out += Array("\\\\".utf8)
            case 0..<0x20: out += Array(("\\u00" + String(c >> 4, radix: 16) + String(c & 15, radix: 16)).utf8)
            default: out.append(c)
            }
        }
        return String(decoding: out + [0x22], as: UTF8.self)
    }

    @Test func anyStringIsEscapedAsTheReferenceEscapesIt() {
        var rng = Xorshift(seed: 9)
        for round in 0..<2_000 {
            let any: (inout Xorshift) -> String = { Self.random(Self.anyAlphabet, 0...(round % 10 == 0 ? 400 : 24), &$0) }
            let e = Self.event(&rng, round: round, text: any, id: any)
            var out: [UInt8] = Array("prefix".utf8)
            EventEncoder.encode(e, into: &out)
            #expect(out.starts(with: Array("prefix".utf8)))
            let bytes = Array(out.dropFirst(6))
            #expect(bytes == EventEncoder.encode(e))
            #expect(!bytes.contains { $0 < 0x20 })
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.contains("\"event_id\":" + Self.referenceEscape(e.eventID) + ","))
            #expect(text.contains("\"customer_id\":" + Self.referenceEscape(e.customerID)))
            #expect(jsonString(e.eventID) == Self.referenceEscape(e.eventID))
        }
    }

    @Test func aValueOfControlCharactersOnlyFits() {
        let worst = String(repeating: "\u{1}", count: 10_000)
        let event = Event(eventID: worst, occurredAt: t0, customerID: worst,
                          payload: .featureUsed(feature: worst, coreValue: false, sessionID: worst))
        let bytes = EventEncoder.encode(event)
        #expect(bytes.count > 4 * 6 * 10_000)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"feature\":" + Self.referenceEscape(worst)))
    }

    @Test func numbersAtTheirLimitsAreWrittenInFull() {
        let event = Event(eventID: "e", occurredAt: t0, customerID: "c",
                          payload: .invoicePaid(invoiceID: "i", plan: .premium, amountCents: .min, currency: "USD", attempts: .max))
        let text = String(decoding: EventEncoder.encode(event), as: UTF8.self)
        #expect(text.contains("\"amount_cents\":-9223372036854775808,"))
        #expect(text.contains("\"attempts\":9223372036854775807}"))
    }
}

/// A small seeded generator for the tests above (the Events module has no simulator).
struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.upperBound - r.lowerBound + 1)) }
}

@Suite struct EncodedSizeTests {
    /// An event encoded into an array of its own does not keep the writing bound's spare capacity.
    @Test func standaloneEncodingIsSizedToFit() {
        for e in samples {
            let bytes = EventEncoder.encode(e)
            #expect(bytes.capacity < bytes.count + 64, "capacity \(bytes.capacity) for \(bytes.count) bytes")
        }
    }
}
