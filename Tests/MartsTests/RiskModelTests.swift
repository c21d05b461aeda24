import Events
import Marts
import Testing
import TestSupport

/// The risk model moves in the documented direction for each signal.
@Suite struct RiskModelTests {
    static let t0 = Timestamp(year: 2025, month: 1, day: 1)
    var state = MartState()
    var n = 0

    mutating func add(_ days: Double, _ payload: Event.Payload) {
        let e = Event(eventID: "e\(n)", occurredAt: Self.t0.adding(ms: Int64(days * 86_400_000)), customerID: "cus_1", payload: payload)
        n += 1
        _ = state.apply(e, valueHash: UInt64(n))
    }

    var score: Int { RiskModel.assess(state.customers["cus_1"]!, asOf: state.maxTime!).score }
    var reasons: [String] { RiskModel.assess(state.customers["cus_1"]!, asOf: state.maxTime!).reasons }

    /// An engaged, paying premium customer: signup, activation, subscription, a paid invoice, weekly use.
    mutating func healthyCustomer() {
        add(0, .customerSignedUp(plan: .free, industry: "SaaS", companySize: .smb, country: "US", channel: "organic"))
        add(1, .featureUsed(feature: "dashboard_build", coreValue: true, sessionID: "s0"))
        add(2, .subscriptionStarted(subscriptionID: "sub", plan: .standard, mrrCents: 4900))
        add(2, .invoiceIssued(invoiceID: "in1", subscriptionID: "sub", plan: .standard, amountCents: 4900, currency: "USD",
                              periodStart: Day(Self.t0), periodEnd: Day(Self.t0.adding(days: 30))))
        add(2, .paymentSucceeded(paymentID: "p1", invoiceID: "in1", plan: .standard, amountCents: 4900, currency: "USD", attempt: 1))
        add(2, .invoicePaid(invoiceID: "in1", plan: .standard, amountCents: 4900, currency: "USD", attempts: 1))
        for week in 0..<16 { add(Double(3 + week * 7), .featureUsed(feature: "report_share", coreValue: true, sessionID: "w\(week)")) }
    }

    @Test func theSegmentShortcutAgreesWithTheFullAssessment() {
        let events = simulatedEvents(customers: 300, months: 14, seed: 5)
        var checked = 0
        var segments = Set<RiskModel.Segment>()
        var state = MartState()
        for (i, e) in events.enumerated() {
            _ = state.apply(e, valueHash: UInt64(i))
            // After every 500th event, every customer, as of now and as of later days (signals ageing out).
            guard i % 500 == 0, let asOf = state.maxTime else { continue }
            for (_, c) in state.customers {
                for days: Int64 in [0, 10, 31, 95] {
                    let t = asOf.adding(days: days)
                    let full = RiskModel.assess(c, asOf: t)
                    #expect(RiskModel.segment(c, asOf: t) == full.segment)
                    segments.insert(full.segment)
                    checked += 1
                }
            }
        }
        #expect(checked > 10_000)
        #expect(segments.count >= 3, "the comparison covers several segments: \(segments)")
    }

    @Test mutating func aHardDeclineRaisesTheScore() {
        healthyCustomer()
        let before = score
        add(115, .invoiceIssued(invoiceID: "in2", subscriptionID: "sub", plan: .standard, amountCents: 4900, currency: "USD",
                                periodStart: Day(Self.t0.adding(days: 115)), periodEnd: Day(Self.t0.adding(days: 145))))
        add(115, .paymentFailed(paymentID: "p2", invoiceID: "in2", plan: .standard, amountCents: 4900, currency: "USD", attempt: 1,
                                failureReason: .expiredCard, nextRetryAt: nil))
        #expect(score > before)
        #expect(reasons.contains("hard_decline") && reasons.contains("past_due"))
    }

    @Test mutating func recoveredEngagementLowersTheScore() {
        healthyCustomer()
        // Two quiet months: use stops.
        add(170, .paymentMethodUpdated(paymentMethod: .card))
        let quiet = score
        #expect(reasons.contains("inactive") || reasons.contains("engagement_drop"))
        for d in 0..<6 { add(171 + Double(d), .featureUsed(feature: "dashboard_build", coreValue: true, sessionID: "back\(d)")) }
        #expect(score < quiet)
    }

    @Test mutating func aCancelIntentRaisesTheScoreAndEachSegmentChangeIsAnnouncedOnce() {
        healthyCustomer()
        #expect(state.riskChange(of: "cus_1") == nil)  // low, as announced by default
        add(116, .cancelIntent(source: .cancelPage))
        add(116.5, .paymentFailed(paymentID: "p3", invoiceID: "in1x", plan: .standard, amountCents: 4900, currency: "USD", attempt: 1,
                                  failureReason: .stolenCard, nextRetryAt: nil))
        let change = state.riskChange(of: "cus_1")
        #expect(change != nil)
        #expect(change.map { $0.assessment.segment > $0.previous } == true)
        #expect(state.riskChange(of: "cus_1") == nil)  // announced once
        #expect(change?.json.contains("\"customer_id\":\"cus_1\"") == true)
    }

    @Test mutating func aSegmentChangeCausedByTimeAloneIsAnnouncedOnceWithinADayOfBeingDue() {
        healthyCustomer()
        #expect(state.riskChange(of: "cus_1") == nil)
        #expect(state.timeDrivenRiskChanges().isEmpty)  // the first sweep schedules
        // cus_1 goes quiet while another customer's events move the as-of on, six hours at a time.
        var announced: [RiskChange] = []
        var firstDue: Timestamp? = nil
        for step in 0..<(4 * 70) {
            let at = Self.t0.adding(ms: Int64((116 + Double(step) / 4) * 86_400_000))
            _ = state.apply(Event(eventID: "o\(step)", occurredAt: at, customerID: "cus_2",
                                  payload: .featureUsed(feature: "login", coreValue: false, sessionID: "o")), valueHash: UInt64(step))
            announced += state.timeDrivenRiskChanges()
            if firstDue == nil && RiskModel.assess(state.customers["cus_1"]!, asOf: at).segment != .low { firstDue = at }
        }
        let mine = announced.filter { $0.customerID == "cus_1" }
        #expect(mine.count == 1, "\(mine.map(\.json))")
        guard let change = mine.first, let due = firstDue else { Issue.record("no time-driven change"); return }
        #expect(change.previous == .low && change.assessment.segment > .low)
        #expect(change.assessment.reasons.contains("inactive"))
        #expect(change.asOf >= due && change.asOf.ms <= due.ms + 2 * 86_400_000, "due \(due), announced \(change.asOf)")
        #expect(state.timeDrivenRiskChanges().isEmpty && state.riskChange(of: "cus_1") == nil)
    }

    @Test mutating func aRestoredStateStillAnnouncesChangesCausedByTime() {
        healthyCustomer()
        #expect(state.riskChange(of: "cus_1") == nil)
        // As after a restart: the same customers and counters, no schedule.
        var restored = MartState(counters: state.counters, aggregates: state.aggregates, customers: state.customers, seen: state.seen)
        var announced: [RiskChange] = []
        for step in 0..<(4 * 70) {
            let at = Self.t0.adding(ms: Int64((116 + Double(step) / 4) * 86_400_000))
            _ = restored.apply(Event(eventID: "o\(step)", occurredAt: at, customerID: "cus_2",
                                     payload: .featureUsed(feature: "login", coreValue: false, sessionID: "o")), valueHash: UInt64(step))
            announced += restored.timeDrivenRiskChanges()
        }
        #expect(announced.filter { $0.customerID == "cus_1" }.count == 1)
    }
}
