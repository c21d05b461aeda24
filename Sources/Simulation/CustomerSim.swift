import Foundation
import Events

/// What happens to one customer: a small state machine that turns scheduled actions into events. `World`
/// runs it one time window at a time (`advance`). It holds only the customer's state, a few pending actions
/// and the events decided for later windows, so memory grows with customers, never with events.
struct CustomerSim {
    let index: Int
    let id: String
    /// The id of the next event: `cus_000042:` and the sequence number, counted up with `seq`.
    private var eventID: IDText
    /// Where the sequence number's digits start in `eventID`.
    private let eventIDDigits: Int
    var rng: Xoshiro
    private let model: Model
    private var seq = 0

    // Who the customer is.
    let signupAt: Timestamp
    let size: CompanySize
    /// First use of a core-value feature; nil for customers who never get there (zombies among them).
    private(set) var firstCoreAt: Timestamp?
    let converts: Bool
    private var churnMultiplier = 1.0
    /// Latent health: multiplies sessions per week; the voluntary hazard falls with it.
    private let health: Double
    /// Multiplier of this customer's first-attempt failure probability (fragile payment methods).
    let failureMultiplier: Double
    /// Multiplier of retry success and of card updates after a hard decline.
    let recoveryMultiplier: Double

    // Subscription state.
    private var generation = 0
    private var subscribed = false
    private var plan: Plan = .free
    private var mrr: Cents = 0
    private var subscriptionID = ""
    private var anchorDay = 1
    private var invoiceCount = 0
    private var paymentCount = 0
    private var openInvoice = false
    private var voluntaryChurnAt: Timestamp?
    /// Latest feature use and latest core-value use (for usage-driven cancellations).
    private var lastUseAt: Timestamp?
    private var lastCoreUseAt: Timestamp?
    private var canceledAt: Timestamp?

    private var actions: [Action] = []
    /// Events decided for a later window than the one being filled, sorted by (time, decision order).
    /// Events are mostly decided in time order, so an insertion is usually an append.
    private var pending: [Pending] = []
    /// While `advance` runs: the window's buffer (swapped in, not copied), where events due before
    /// `windowEnd` go straight away.
    private var outbox: [Pending] = []
    private var windowEnd = Int64.min

    var truth: CustomerTruth

    /// A decided event and its time.
    struct Pending {
        var time: Int64
        var event: Event
        /// The event's type, kept beside it so that `World.peekNext` need not read the event's payload.
        /// Declared last, it fits in the event's tail padding.
        var type: EventType
    }

    enum ActionKind {
        case signup, session, firstCoreUse, convert, invoice, voluntaryChurn, cancelIntent(CancelSource)
        case involuntaryCancel, invoiceClosed, planChange, monthlyTick, reactivate
    }

    struct Action {
        var at: Timestamp
        var kind: ActionKind
        var generation: Int
    }

    init(index: Int, model: Model) {
        self.index = index
        self.model = model
        let padded = String(index)
        self.id = "cus_" + String(repeating: "0", count: max(0, 6 - padded.count)) + padded
        var prefix = IDText(id)
        prefix.append(ascii: ":")
        self.eventIDDigits = prefix.count
        prefix.append(0)
        self.eventID = prefix
        var rng = Xoshiro(seed: model.seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        let cfg = model.config
        self.signupAt = model.signupTime(&rng)
        self.size = rng.chance(cfg.customers.midMarketShare) ? .midMarket : .smb
        let activates = rng.chance(cfg.engagement.activationRate)
        if activates {
            let ttvDays = min(rng.logNormal(median: cfg.engagement.medianTtvDays, sigma: 0.8), 13.9)
            firstCoreAt = signupAt.adding(ms: Int64(ttvDays * 86_400_000))
        } else if rng.chance(0.3) {
            firstCoreAt = signupAt.adding(ms: Int64(rng.uniform(15, 75) * 86_400_000))  // late, not "activated"
        }
        // Customers who reach value convert more often; the configured shares stay the averages.
        let share = size == .midMarket ? cfg.conversion.midMarketPaidShare : cfg.conversion.paidShare
        let act = cfg.engagement.activationRate, m = cfg.conversion.activatedMultiplier
        let norm = max(act * m + (1 - act), 1e-9)
        converts = rng.chance(min(share * (activates ? m : 1) / norm, 0.95))
        if converts && rng.chance(cfg.engagement.zombieShare) { firstCoreAt = nil }
        if firstCoreAt == nil || !activates { churnMultiplier = cfg.churn.unactivatedMultiplier }
        // log(health) ~ N(-σ²/2, σ²), so E[health] = 1; the hazard multiplier health^-k is divided by its
        // mean exp(kσ²(k+1)/2) so that the configured voluntary churn stays the average.
        let sigma = cfg.engagement.healthSigma, k = cfg.churn.healthElasticity
        let logHealth = sigma * rng.normal() - sigma * sigma / 2
        health = exp(logHealth)
        churnMultiplier *= exp(-k * logHealth) / exp(k * sigma * sigma * (k + 1) / 2)
        let fragile = rng.chance(cfg.payments.fragileShare)
        let mean = cfg.payments.fragileShare * cfg.payments.fragileMultiplier + (1 - cfg.payments.fragileShare)
        failureMultiplier = (fragile ? cfg.payments.fragileMultiplier : 1) / max(mean, 1e-9)
        let a = cfg.payments.recoveryHealthElasticity
        recoveryMultiplier = exp(a * logHealth) / exp(sigma * sigma * a * (a - 1) / 2)
        self.rng = rng
        self.truth = CustomerTruth(customerID: id, monthlyChurnPropensity: 0, churns: [], zombie: converts && firstCoreAt == nil)
        schedule(signupAt, .signup)
    }

    /// Runs this customer up to `end` (exclusive): appends to `out` every event due before `end` (events of
    /// equal time in decision order), and returns the time of its next pending event or action (`Int64.max`
    /// when it has none).
    /// Any action creates events at or after its own time, so once every action before `end` has run, the
    /// events before `end` are all decided.
    mutating func advance(until end: Int64, into out: inout [Pending]) -> Int64 {
        windowEnd = end
        swap(&outbox, &out)
        var due = 0
        while due < pending.count && pending[due].time < end { due += 1 }
        if due > 0 {
            outbox.append(contentsOf: pending[0..<due])
            pending.removeFirst(due)
        }
        var nextAction = Int64.max
        while let next = nextActionIndex() {
            let at = actions[next].at.ms
            guard at < end else {
                nextAction = at
                break
            }
            run(actions.remove(at: next))
        }
        swap(&outbox, &out)
        return min(pending.first?.time ?? .max, nextAction)
    }

    /// The time of the earliest pending action (`Int64.max`: none).
    var nextActionTime: Int64 {
        nextActionIndex().map { actions[$0].at.ms } ?? .max
    }

    private func nextActionIndex() -> Int? {
        var best: Int? = nil
        for i in actions.indices where best == nil || actions[i].at < actions[best!].at { best = i }
        return best
    }

    private mutating func schedule(_ at: Timestamp, _ kind: ActionKind) {
        guard at < model.end else { return }
        actions.append(Action(at: at, kind: kind, generation: generation))
    }

    /// `payload` is consumed: moved into the event, not copied (callers build it for this call).
    private mutating func emit(_ at: Timestamp, _ payload: consuming Event.Payload) {
        guard at < model.end else { return }
        let type = payload.type
        if model.omitEngagement && type.topic == .engagement {
            // Simulated, not emitted: the next events keep the identifiers they have in the full stream.
            seq += 1
            eventID.incrementNumber(digitsFrom: eventIDDigits)
            return
        }
        let entry = Pending(time: at.ms, event: Event(eventID: eventID.string, occurredAt: at, customerID: id, payload: payload),
                            type: type)
        seq += 1
        eventID.incrementNumber(digitsFrom: eventIDDigits)
        if at.ms < windowEnd {
            outbox.append(entry)
            return
        }
        // After every event decided for the same time or earlier: decision order breaks ties.
        var i = pending.count
        while i > 0 && pending[i - 1].time > at.ms { i -= 1 }
        if i == pending.count {
            pending.append(entry)
        } else {
            pending.insert(entry, at: i)
        }
    }

    /// `prefix` (at most 4 bytes) and the numbers joined by `_`: `ids("in_", 42, 1, 3)` is `in_42_1_3`.
    private func ids(_ prefix: String, _ a: Int, _ b: Int, _ c: Int? = nil) -> String {
        var text = IDText(prefix)
        text.append(a)
        text.append(ascii: "_")
        text.append(b)
        if let c {
            text.append(ascii: "_")
            text.append(c)
        }
        return text.string
    }

    // MARK: Actions

    private mutating func run(_ action: Action) {
        let t = action.at
        let cfg = model.config
        switch action.kind {
        case .signup:
            emit(t, .customerSignedUp(plan: .free, industry: model.industries.draw(&rng), companySize: size,
                                      country: model.countries.draw(&rng), channel: model.channels.draw(&rng)))
            schedule(t.adding(ms: Int64(rng.uniform(60_000, 3_600_000))), .session)
            if let core = firstCoreAt { schedule(core, .firstCoreUse) }
            if converts {
                let days = rng.uniform(cfg.conversion.daysToConvertMin, cfg.conversion.daysToConvertMax)
                schedule(t.adding(ms: Int64(days * 86_400_000)), .convert)
            }
            schedule(t.adding(days: 30), .monthlyTick)

        case .session:
            let rate = sessionsPerWeek(at: t)
            if rate > 0 {
                let n = rng.int(1...max(1, cfg.engagement.eventsPerSessionMax))
                let session = ids("ses_", index, seq)
                var at = t
                for _ in 0..<n {
                    let core = firstCoreAt.map { at >= $0 } == true && rng.chance(cfg.engagement.coreShare)
                    let feature = core ? model.coreFeature(&rng) : model.otherFeature(&rng)
                    emit(at, .featureUsed(feature: feature, coreValue: core, sessionID: session))
                    lastUseAt = at
                    if core { lastCoreUseAt = at }
                    at = at.adding(ms: Int64(rng.uniform(20_000, 300_000)))
                }
            }
            let effective = max(rate, 0.05)
            schedule(t.adding(ms: Int64(rng.exponential(mean: 7 * 86_400_000 / effective))), .session)

        case .firstCoreUse:
            emit(t, .featureUsed(feature: model.coreFeature(&rng), coreValue: true, sessionID: ids("ses_", index, seq)))
            lastUseAt = t
            lastCoreUseAt = t

        case .convert, .reactivate:
            if case .reactivate = action.kind, action.generation != generation || subscribed { return }
            startSubscription(at: t)

        case .invoice:
            guard action.generation == generation, subscribed else { return }
            issueInvoice(at: t)

        case .voluntaryChurn:
            guard action.generation == generation, subscribed else { return }
            if openInvoice {  // let dunning finish first: an uncollectible invoice must end in involuntary churn
                schedule(t.adding(days: 9), .voluntaryChurn)
                return
            }
            endSubscription(at: t, .voluntary)

        case let .cancelIntent(source):
            emit(t, .cancelIntent(source: source))

        case .involuntaryCancel:
            guard action.generation == generation, subscribed else { return }
            openInvoice = false
            endSubscription(at: t, .involuntary)

        case .invoiceClosed:
            if action.generation == generation { openInvoice = false }

        case .planChange:
            guard action.generation == generation, subscribed, !openInvoice else { return }
            let plans = Plan.paid
            let idx = plans.firstIndex(of: plan) ?? 0
            let up = rng.chance(cfg.planChanges.monthlyUpgrade / max(cfg.planChanges.monthlyUpgrade + cfg.planChanges.monthlyDowngrade, 1e-9))
            let target = up ? idx + 1 : idx - 1
            guard plans.indices.contains(target) else { return }
            let newPlan = plans[target]
            let newMrr = cfg.prices.mrr(newPlan)
            emit(t, .subscriptionPlanChanged(subscriptionID: subscriptionID, fromPlan: plan, toPlan: newPlan,
                                             fromMrrCents: mrr, toMrrCents: newMrr))
            plan = newPlan
            mrr = newMrr

        case .monthlyTick:
            if subscribed {
                usageReview(at: t)
                let p = cfg.planChanges.monthlyUpgrade + cfg.planChanges.monthlyDowngrade
                if rng.chance(p) { schedule(t.adding(ms: Int64(rng.uniform(0, 30) * 86_400_000)), .planChange) }
                if rng.chance(cfg.payments.spontaneousMethodUpdateMonthly) {
                    emit(t.adding(ms: Int64(rng.uniform(0, 30) * 86_400_000)), .paymentMethodUpdated(paymentMethod: model.method(&rng)))
                }
            }
            if rng.chance(cfg.engagement.cancelIntentBaseMonthly) {
                schedule(t.adding(ms: Int64(rng.uniform(0, 30) * 86_400_000)), .cancelIntent(.downgradeFlow))
            }
            // Long after a final churn the account goes quiet.
            if let c = canceledAt, !subscribed, t.ms - c.ms > 120 * 86_400_000 { return }
            schedule(t.adding(days: 30), .monthlyTick)
        }
    }

    private func sessionsPerWeek(at t: Timestamp) -> Double {
        let e = model.config.engagement
        var rate = health * ((firstCoreAt.map { t >= $0 } == true) ? e.sessionsPerWeek : e.inactiveSessionsPerWeek)
        if let churn = voluntaryChurnAt, subscribed {
            let left = Double(churn.ms - t.ms) / 86_400_000
            if left < e.decayDays {
                rate *= e.decayFloor + (1 - e.decayFloor) * max(left, 0) / e.decayDays
            }
        }
        if !subscribed, let c = canceledAt {
            rate *= t.ms - c.ms > 60 * 86_400_000 ? 0 : 0.15
        }
        return rate
    }

    private mutating func startSubscription(at t: Timestamp) {
        let cfg = model.config
        generation += 1
        subscribed = true
        plan = size == .midMarket ? model.midMarketPlans.draw(&rng) : model.smbPlans.draw(&rng)
        mrr = cfg.prices.mrr(plan)
        subscriptionID = ids("sub_", index, generation)
        anchorDay = t.dayOfMonth
        invoiceCount = 0
        emit(t, .subscriptionStarted(subscriptionID: subscriptionID, plan: plan, mrrCents: mrr))
        schedule(t.adding(ms: 1000), .invoice)
        // Voluntary churn: exponential with the plan's monthly hazard.
        let monthly = min((cfg.churn.monthlyVoluntary[plan.rawValue] ?? 0.03) * churnMultiplier, 0.95)
        truth.monthlyChurnPropensity = monthly
        let monthsToChurn = rng.exponential(mean: 1 / max(-log(1 - monthly), 1e-6))
        let churnAt = t.adding(ms: Int64(monthsToChurn * 30.44 * 86_400_000))
        voluntaryChurnAt = churnAt
        schedule(churnAt, .voluntaryChurn)
        if rng.chance(cfg.engagement.cancelIntentBeforeChurn) {
            let before = churnAt.adding(ms: -Int64(rng.uniform(1, max(1, cfg.engagement.cancelIntentLeadDaysMax)) * 86_400_000))
            if before > t { schedule(before, .cancelIntent(.cancelPage)) }
        }
    }

    /// A paying account that got no use out of the product in the last 30 days may decide to cancel:
    /// idle accounts (no use at all) and zombies (no core-value use) with their own monthly chances.
    private mutating func usageReview(at t: Timestamp) {
        let cfg = model.config
        let month = 30 * Timestamp.millisecondsPerDay
        let idle = lastUseAt.map { t.ms - $0.ms > month } ?? true
        let zombie = lastCoreUseAt.map { t.ms - $0.ms > month } ?? true
        let planFactor = cfg.churn.unusedPlanMultiplier[plan.rawValue] ?? 1
        let p = (idle ? cfg.churn.idleMonthly : zombie ? cfg.churn.zombieMonthly : 0) * planFactor
        guard p > 0, rng.chance(p) else { return }
        // Decided now, effective at a later date (notice period, end of the paid term).
        let churnAt = t.adding(ms: Int64(rng.uniform(7, 35) * 86_400_000))
        guard voluntaryChurnAt.map({ churnAt < $0 }) ?? true else { return }
        voluntaryChurnAt = churnAt
        schedule(churnAt, .voluntaryChurn)
        if rng.chance(cfg.engagement.cancelIntentBeforeChurn) {
            schedule(t.adding(ms: Int64(rng.uniform(0, 3) * 86_400_000)), .cancelIntent(.cancelPage))
        }
    }

    private mutating func endSubscription(at t: Timestamp, _ kind: Cancellation) {
        let cfg = model.config
        emit(t, .subscriptionCanceled(subscriptionID: subscriptionID, plan: plan, mrrCents: mrr, cancellation: kind))
        if t < model.end { truth.churns.append(ChurnTruth(at: t, kind: kind)) }
        subscribed = false
        canceledAt = t
        voluntaryChurnAt = nil
        generation += 1
        if rng.chance(cfg.churn.reactivationShare) {
            let months = Double(rng.int(1...max(1, cfg.churn.reactivationMonthsMax)))
            schedule(t.adding(ms: Int64(months * 30.44 * 86_400_000)), .reactivate)
        }
    }

    private mutating func issueInvoice(at t: Timestamp) {
        let cfg = model.config
        invoiceCount += 1
        let invoiceID = ids("in_", index, generation, invoiceCount)
        let amount = mrr
        let periodEnd = t.addingMonths(1, anchorDay: anchorDay)
        emit(t, .invoiceIssued(invoiceID: invoiceID, subscriptionID: subscriptionID, plan: plan, amountCents: amount,
                               currency: cfg.prices.currency, periodStart: Day(t), periodEnd: Day(periodEnd.adding(days: -1))))
        openInvoice = true

        // The whole dunning story of this invoice is decided now; its events are future-dated.
        var attemptAt = t.adding(ms: Int64(rng.uniform(5_000, 120_000)))
        var firstFailure: Timestamp? = nil
        var lastReason: FailureReason? = nil
        var attempt = 1
        var outcomeAt = attemptAt
        var paid = false
        var afterCardUpdate = false
        while true {
            let (fails, forcedReason) = model.attemptFails(at: attemptAt, plan: plan, attempt: attempt,
                                                          afterCardUpdate: afterCardUpdate, multiplier: failureMultiplier,
                                                          recovery: recoveryMultiplier, &rng)
            paymentCount += 1
            let paymentID = ids("pay_", index, paymentCount)
            if !fails {
                emit(attemptAt, .paymentSucceeded(paymentID: paymentID, invoiceID: invoiceID, plan: plan, amountCents: amount,
                                                  currency: cfg.prices.currency, attempt: attempt))
                outcomeAt = attemptAt.adding(ms: 1000)
                emit(outcomeAt, .invoicePaid(invoiceID: invoiceID, plan: plan, amountCents: amount, currency: cfg.prices.currency, attempts: attempt))
                paid = true
                break
            }
            let reason: FailureReason
            if let forcedReason { reason = forcedReason }
            else if let lastReason, rng.chance(0.7), lastReason.declineType == .soft { reason = lastReason }
            else { reason = model.reasons.draw(&rng) }
            lastReason = reason
            let first = firstFailure ?? attemptAt
            firstFailure = first
            // The next attempt, if any.
            var next: Timestamp? = nil
            var cardUpdateAt: Timestamp? = nil
            if reason.declineType == .hard {
                if !afterCardUpdate && rng.chance(min(cfg.payments.cardUpdateAfterHard * recoveryMultiplier, 0.95)) {
                    let update = attemptAt.adding(ms: Int64(rng.uniform(0.2, cfg.payments.cardUpdateDaysMax) * 86_400_000))
                    cardUpdateAt = update
                    next = update.adding(ms: 3_600_000)
                }
            } else if attempt - 1 < cfg.payments.retryDays.count {
                // Retry jobs run through the day, not at the failure's exact time of day.
                let slot = first.adding(ms: Int64((cfg.payments.retryDays[attempt - 1] + rng.uniform(-0.25, 0.25)) * 86_400_000))
                next = slot > attemptAt ? slot : attemptAt.adding(ms: 3_600_000)
            }
            emit(attemptAt, .paymentFailed(paymentID: paymentID, invoiceID: invoiceID, plan: plan, amountCents: amount,
                                           currency: cfg.prices.currency, attempt: attempt, failureReason: reason, nextRetryAt: next))
            if attempt == 1 && rng.chance(cfg.engagement.cancelIntentAfterFailure) {
                schedule(attemptAt.adding(ms: Int64(rng.uniform(0.1, 7) * 86_400_000)), .cancelIntent(.supportTicket))
            }
            if let cardUpdateAt {
                emit(cardUpdateAt, .paymentMethodUpdated(paymentMethod: .card))
                afterCardUpdate = true
            }
            guard let next else {
                if reason.declineType == .hard && cardUpdateAt == nil {
                    // The dunning emails ask for a new card until the schedule's last day; none comes.
                    let lastDay = cfg.payments.retryDays.last ?? 0
                    outcomeAt = max(attemptAt.adding(ms: 1000), first.adding(ms: Int64(lastDay * 86_400_000)))
                } else {
                    outcomeAt = attemptAt.adding(ms: 1000)
                }
                break
            }
            attemptAt = next
            attempt += 1
        }
        schedule(t.addingMonths(1, anchorDay: anchorDay), .invoice)
        if paid {
            schedule(outcomeAt, .invoiceClosed)
        } else {
            emit(outcomeAt, .invoiceUncollectible(invoiceID: invoiceID, plan: plan, amountCents: amount,
                                                  currency: cfg.prices.currency, attempts: attempt))
            schedule(outcomeAt.adding(ms: 1000), .involuntaryCancel)
        }
    }
}

/// What no event shows: a customer's latent churn propensity and actual churns.
public struct CustomerTruth: Sendable, Codable, Equatable {
    public var customerID: String
    /// Monthly voluntary churn hazard of its latest subscription: the part no usage explains. Cancellations
    /// decided at a usage review (idle or zombie accounts) come on top of it.
    public var monthlyChurnPropensity: Double
    public var churns: [ChurnTruth]
    public var zombie: Bool
}

public struct ChurnTruth: Sendable, Codable, Equatable {
    public var at: Timestamp
    public var kind: Cancellation
}

extension Timestamp: Codable {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let t = Timestamp(rfc3339: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad time \(text)"))
        }
        self = t
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

extension Cancellation: Codable {}
