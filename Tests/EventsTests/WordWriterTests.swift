@testable import Events
import Testing

/// The word-at-a-time writer against the byte-at-a-time one: the same bytes for every event it takes, and it
/// declines exactly the events it cannot write exactly (a string that needs an escape, a year outside 0-9999).
@Suite struct WordWriterTests {
    /// The word writer's output alone, or nil where it declines.
    static func fast(_ e: Event, at start: Int = 0) -> [UInt8]? {
        var out = [UInt8](repeating: 0xEE, count: start + WordWriter.region)
        var span = out.mutableSpan
        var raw = unsafe span.mutableBytes
        guard let end = WordWriter.write(e, to: &raw, at: start) else { return nil }
        return Array(out[start..<end])
    }

    static func slow(_ e: Event) -> [UInt8] {
        var out: [UInt8] = []
        EventEncoder.encodeByteByByte(e, into: &out)
        return out
    }

    /// Numbers at every digit count and sign, with the edges of the word writer's eight-digit path.
    static let numbers: [Int64] = [0, 1, 9, 10, 99, 100, 9_999_999, 10_000_000, 99_999_999, 100_000_000, 123_456_789_012,
                                   -1, -9, -10, -99_999_999, -100_000_000, .max, .min]

    static func number(_ rng: inout Xorshift) -> Int64 {
        if rng.int(0...1) == 0 { return numbers[rng.int(0...(numbers.count - 1))] }
        let digits = rng.int(1...19)
        var v: Int64 = 0
        for _ in 0..<digits { v = v &* 10 &+ Int64(rng.int(0...9)) }
        return rng.int(0...5) == 0 ? -abs(v % Int64.max) : abs(v % Int64.max)
    }

    /// Times mostly in this century, also in the years 0-9999 at large, and some outside them.
    static func time(_ rng: inout Xorshift) -> Timestamp {
        switch rng.int(0...9) {
        case 0: Timestamp(ms: Int64(rng.int(-62_167_219_200_000...253_402_300_799_999)))  // years 0-9999
        case 1: Timestamp(ms: Int64(rng.int(-70_000_000_000_000...(-62_167_219_200_001))))  // before year 0
        case 2: Timestamp(ms: Int64(rng.int(253_402_300_800_000...300_000_000_000_000)))  // after 9999
        default: Timestamp(ms: Int64(rng.int(946_684_800_000...4_102_444_799_999)))
        }
    }

    static func plain(_ rng: inout Xorshift) -> String {
        let alphabet = Array("abcXYZ019_-.: /é")
        return String((0..<rng.int(0...40)).map { _ in alphabet[rng.int(0...(alphabet.count - 1))] })
    }

    static func event(_ rng: inout Xorshift) -> Event {
        let t = time(&rng)
        let text = { (r: inout Xorshift) in plain(&r) }
        let plan = Plan.allCases[rng.int(0...3)]
        let reason = FailureReason.allCases[rng.int(0...(FailureReason.allCases.count - 1))]
        let day = Day(days: Int64(rng.int(-800_000...3_000_000)))
        let payloads: [Event.Payload] = [
            .customerSignedUp(plan: plan, industry: text(&rng), companySize: CompanySize.allCases[rng.int(0...1)], country: text(&rng),
                              channel: text(&rng)),
            .subscriptionStarted(subscriptionID: text(&rng), plan: plan, mrrCents: number(&rng)),
            .subscriptionPlanChanged(subscriptionID: text(&rng), fromPlan: plan, toPlan: Plan.allCases[rng.int(0...3)],
                                     fromMrrCents: number(&rng), toMrrCents: number(&rng)),
            .subscriptionCanceled(subscriptionID: text(&rng), plan: plan, mrrCents: number(&rng), cancellation: Cancellation.allCases[rng.int(0...1)]),
            .invoiceIssued(invoiceID: text(&rng), subscriptionID: text(&rng), plan: plan, amountCents: number(&rng), currency: text(&rng),
                           periodStart: day, periodEnd: Day(days: day.days + Int64(rng.int(0...400)))),
            .invoicePaid(invoiceID: text(&rng), plan: plan, amountCents: number(&rng), currency: text(&rng), attempts: Int(number(&rng))),
            .invoiceUncollectible(invoiceID: text(&rng), plan: plan, amountCents: number(&rng), currency: text(&rng), attempts: Int(number(&rng))),
            .paymentSucceeded(paymentID: text(&rng), invoiceID: text(&rng), plan: plan, amountCents: number(&rng), currency: text(&rng),
                              attempt: Int(number(&rng))),
            .paymentFailed(paymentID: text(&rng), invoiceID: text(&rng), plan: plan, amountCents: number(&rng), currency: text(&rng),
                           attempt: Int(number(&rng)), failureReason: reason, nextRetryAt: rng.int(0...1) == 0 ? nil : time(&rng)),
            .paymentMethodUpdated(paymentMethod: PaymentMethod.allCases[rng.int(0...2)]),
            .featureUsed(feature: text(&rng), coreValue: rng.int(0...1) == 0, sessionID: text(&rng)),
            .cancelIntent(source: CancelSource.allCases[rng.int(0...2)]),
        ]
        return Event(eventID: text(&rng), occurredAt: t, customerID: text(&rng), payload: payloads[rng.int(0...(payloads.count - 1))])
    }

    /// Whether every time and date of the event lies in the years 0-9999.
    static func yearsFit(_ e: Event) -> Bool {
        let years = 0...9999
        func fits(_ d: Day) -> Bool { years.contains(Int(CivilDate.fromDays(d.days).0)) }
        func fits(_ t: Timestamp) -> Bool { fits(Day(t)) }
        guard fits(e.occurredAt) else { return false }
        switch e.payload {
        case let .invoiceIssued(_, _, _, _, _, start, end): return fits(start) && fits(end)
        case let .paymentFailed(_, _, _, _, _, _, _, next): return next.map(fits) ?? true
        default: return true
        }
    }

    @Test func everyTypeAndValueIsWrittenAsTheByteWriterWritesIt() {
        var rng = Xorshift(seed: 17)
        var taken = 0, declined = 0
        var reusable = EventEncoder.Reusable()
        for round in 0..<30_000 {
            let e = Self.event(&rng)
            let expected = Self.slow(e)
            if let got = Self.fast(e, at: round % 13) {
                taken += 1
                #expect(got == expected, "\(String(decoding: got, as: UTF8.self)) vs \(String(decoding: expected, as: UTF8.self))")
                #expect(Self.yearsFit(e))
            } else {
                declined += 1
                #expect(!Self.yearsFit(e), "declined an event it can write: \(String(decoding: expected, as: UTF8.self))")
            }
            var viaEncoder: [UInt8] = [1, 2, 3]
            EventEncoder.encode(e, into: &viaEncoder)
            #expect(viaEncoder == [1, 2, 3] + expected)
            // The reusable encoder's region keeps the bytes of earlier, longer events past this one's end.
            var viaReusable: [UInt8] = [4, 5]
            reusable.encode(e, into: &viaReusable)
            #expect(viaReusable == [4, 5] + expected)
        }
        #expect(taken > 20_000 && declined > 1_000)
    }

    @Test func aStringThatNeedsAnEscapeIsDeclinedWhereverItIs() {
        let special: [UInt8] = [0x22, 0x5C, 0x00, 0x01, 0x0A, 0x1F]
        let harmless: [UInt8] = [0x20, 0x21, 0x23, 0x5B, 0x5D, 0x7E, 0x7F]
        for length in 1...40 {
            for position in 0..<length {
                for (byte, escaped) in special.map({ ($0, true) }) + harmless.map({ ($0, false) }) {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[position] = byte
                    let text = String(decoding: bytes, as: UTF8.self)
                    for e in [Event(eventID: text, occurredAt: t0, customerID: "c", payload: .cancelIntent(source: .cancelPage)),
                              Event(eventID: "e", occurredAt: t0, customerID: "c",
                                    payload: .featureUsed(feature: "f", coreValue: true, sessionID: text))] {
                        let got = Self.fast(e)
                        #expect((got == nil) == escaped, "length \(length), byte \(byte) at \(position)")
                        if let got { #expect(got == Self.slow(e)) }
                        #expect(EventEncoder.encode(e) == Self.slow(e))
                    }
                }
            }
        }
    }

    /// The longest event of each type (every number 20 characters, both times present, strings filling the
    /// region's room for them) is written; one more string byte and it is declined, and still encoded right.
    @Test func theRegionHoldsTheLongestEventOfEachTypeAndDeclinesLonger() {
        let s = String(repeating: "x", count: 40)
        let far = Timestamp(ms: 253_402_300_799_999)
        let room = WordWriter.region - EventEncoder.fixedBytes - WordWriter.slack
        for sample in samples {
            var e = sample
            e.customerID = s
            e.occurredAt = far
            switch e.payload {
            case let .paymentFailed(_, _, plan, _, _, _, reason, _):
                e.payload = .paymentFailed(paymentID: s, invoiceID: s, plan: plan, amountCents: .min, currency: s, attempt: .min,
                                           failureReason: reason, nextRetryAt: far)
            case let .subscriptionPlanChanged(_, from, to, _, _):
                e.payload = .subscriptionPlanChanged(subscriptionID: s, fromPlan: from, toPlan: to, fromMrrCents: .min, toMrrCents: .min)
            case let .customerSignedUp(plan, _, size, _, _):
                e.payload = .customerSignedUp(plan: plan, industry: s, companySize: size, country: s, channel: s)
            case let .invoiceIssued(_, _, plan, _, _, start, end):
                e.payload = .invoiceIssued(invoiceID: s, subscriptionID: s, plan: plan, amountCents: .min, currency: s, periodStart: start, periodEnd: end)
            case let .paymentSucceeded(_, _, plan, _, _, _):
                e.payload = .paymentSucceeded(paymentID: s, invoiceID: s, plan: plan, amountCents: .min, currency: s, attempt: .min)
            case let .featureUsed(_, core, _):
                e.payload = .featureUsed(feature: s, coreValue: core, sessionID: s)
            default: break
            }
            e.eventID = ""
            e.eventID = String(repeating: "y", count: room - EventEncoder.stringBytes(e))
            let bytes = Self.slow(e)
            #expect(Self.fast(e) == bytes, "\(e.type)")
            #expect(bytes.count + WordWriter.slack <= WordWriter.region)
            e.eventID += "y"
            #expect(Self.fast(e) == nil, "\(e.type)")
            #expect(EventEncoder.encode(e) == Self.slow(e))
        }
    }
}
