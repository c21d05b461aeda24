import Events

/// How one event changes a customer's state and the aggregates.
enum Contributions {
    static let window30d = 30 * Timestamp.millisecondsPerDay

    static func apply(_ e: Event, to c: inout CustomerState, aggregates a: inout Aggregates, asOf: Timestamp) {
        let m = e.occurredAt.month.index
        let key = EventKey(e.occurredAt, e.eventID)
        switch e.payload {
        case .customerSignedUp:
            withCohort(&c, &a) { c in
                if c.signedUpKey.map({ key < $0 }) ?? true {
                    c.signedUpAt = e.occurredAt
                    c.signedUpKey = key
                }
            }

        case let .subscriptionStarted(_, plan, mrr):
            withSubscriptions(&c, &a) { $0.insertSubscription(SubscriptionEvent(key: key, kind: .started(plan: plan, mrr: mrr))) }

        case let .subscriptionPlanChanged(_, _, toPlan, from, to):
            withSubscriptions(&c, &a) { $0.insertSubscription(SubscriptionEvent(key: key, kind: .changed(from: from, to: to, toPlan: toPlan))) }

        case let .subscriptionCanceled(_, _, mrr, kind):
            withSubscriptions(&c, &a) { $0.insertSubscription(SubscriptionEvent(key: key, kind: .canceled(kind, mrr: mrr))) }
            withFailureToChurn(&c, &a, months: (m - 2)...m) { c, a in
                setFlag(&c, &a, m, MonthFlags.canceled)
                if kind == .involuntary { setFlag(&c, &a, m, MonthFlags.canceledInvoluntary) }
            }

        case let .invoiceIssued(invoiceID, _, _, _, _, _, _):
            c.invoicesIssued += 1
            if c.invoices[invoiceID] == nil { c.invoices[invoiceID] = InvoiceState() }
            withFailureToChurn(&c, &a, months: m...m) { c, a in setFlag(&c, &a, m, MonthFlags.billed) }

        case let .invoicePaid(invoiceID, _, amount, _, attempts), let .invoiceUncollectible(invoiceID, _, amount, _, attempts):
            let paid = e.type == .invoicePaid
            if paid { c.invoicesPaid += 1 } else { c.invoicesUncollectible += 1 }
            withRecovery(&c, &a, invoiceID) { inv in
                if inv.end.map({ key < $0.key }) ?? true { inv.end = (key, paid, attempts, amount) }
            }

        case let .paymentSucceeded(_, invoiceID, plan, amount, _, attempt):
            let first = attempt == 1
            var rev = Cell.zero
            rev[0] = amount; rev[1] = first ? amount : 0; rev[2] = first ? 0 : amount; rev[3] = 1
            a.revenue[CellKey(m, Int32(plan.rank)), default: .zero] &+= rev
            a.revenue[CellKey(m, 0), default: .zero] &+= rev
            var flags = c.months[m] ?? MonthFlags()
            let bit = UInt8(1) << UInt8(plan.rank)
            if flags.paidPlans & bit == 0 {
                flags.paidPlans |= bit
                a.revenue[CellKey(m, Int32(plan.rank)), default: .zero] &+= unit(4)
            }
            if !flags.has(MonthFlags.paid) {
                flags.flags |= MonthFlags.paid
                a.revenue[CellKey(m, 0), default: .zero] &+= unit(4)
            }
            c.months[m] = flags
            c.lifetimeRevenue += amount
            var rel = Cell.zero
            rel[0] = 1; rel[1] = 1; rel[3] = first ? 1 : 0; rel[5] = first ? 0 : 1; rel[6] = first ? 0 : 1
            countAttempt(&c, &a, invoiceID, m, plan, rel)

        case let .paymentFailed(_, invoiceID, plan, amount, _, attempt, reason, _):
            let first = attempt == 1
            var rel = Cell.zero
            rel[0] = 1; rel[2] = 1; rel[3] = first ? 1 : 0; rel[4] = first ? 1 : 0; rel[5] = first ? 0 : 1
            countAttempt(&c, &a, invoiceID, m, plan, rel)
            var fail = Cell.zero
            fail[0] = 1; fail[1] = amount
            let reasonBit = UInt16(1) << UInt16(reason.index)
            var flags = c.months[m] ?? MonthFlags()
            if flags.reasons & reasonBit == 0 {
                flags.reasons |= reasonBit
                fail[2] = 1
            }
            c.months[m] = flags
            a.failureReasons[CellKey(m, Int32(reason.index)), default: .zero] &+= fail
            c.paymentsFailed += 1
            if c.lastFailure.map({ $0.key < key }) ?? true { c.lastFailure = (key, reason) }
            c.recentFailures.append((e.occurredAt.ms, reason.declineType == .hard))
            c.recentFailures.removeAll { $0.time <= asOf.ms - 90 * Timestamp.millisecondsPerDay }
            withRecovery(&c, &a, invoiceID) { inv in
                inv.failed = true
                if let ff = inv.firstFailure, (ff.attempt, ff.key) < (attempt, key) { return }
                inv.firstFailure = (attempt, key, reason)
            }
            withFailureToChurn(&c, &a, months: m...m) { c, a in setFlag(&c, &a, m, MonthFlags.failed) }

        case .paymentMethodUpdated:
            break

        case let .featureUsed(_, core, _):
            // One read and write of the month and one engagement update for the use and the flags it sets.
            var flags = c.months[m] ?? MonthFlags()
            var eng = Cell.zero
            eng[1] = 1; eng[2] = core ? 1 : 0
            eng &+= setting(MonthFlags.active, in: &flags) ?? .zero
            if core { eng &+= setting(MonthFlags.coreActive, in: &flags) ?? .zero }
            flags.featureEvents += 1
            c.months[m] = flags
            a.engagement[CellKey(m, 0), default: .zero] &+= eng
            // Failure to churn reads a month's feature use only as the previous month's use of the row after it
            // and the next month's use of the row before it: one more use adds one to each, where those rows exist.
            if let next = c.months[m + 1], next.has(MonthFlags.billed) {
                a.failureToChurn[churnRow(m + 1, next), default: .zero] &+= unit(4)
            }
            if let previous = c.months[m - 1], previous.has(MonthFlags.billed) {
                a.failureToChurn[churnRow(m - 1, previous), default: .zero] &+= unit(5)
            }
            let t = e.occurredAt
            if c.lastActive.map({ $0 < t }) ?? true { c.lastActive = t }
            if core {
                if c.lastCoreUse.map({ $0 < t }) ?? true { c.lastCoreUse = t }
                if c.firstCoreUse.map({ t < $0 }) ?? true {
                    withCohort(&c, &a) { $0.firstCoreUse = t }
                }
            }
            let from = asOf.ms - window30d
            if t.ms > from { c.recentFeatureTimes.append(t.ms) }
            // Pruned a week late, so that a steady user's list is scanned about once a week rather than on every
            // use (readers count only the times inside their window); and at each power of two from 64 on, which
            // bounds it when uses arrive out of order.
            let n = c.recentFeatureTimes.count
            if let oldest = c.recentFeatureTimes.first, oldest <= from - 7 * Timestamp.millisecondsPerDay || (n >= 64 && n & (n - 1) == 0) {
                c.recentFeatureTimes.removeAll { $0 <= from }
            }

        case .cancelIntent:
            c.cancelIntents += 1
            c.recentCancelIntents.append(e.occurredAt.ms)
            c.recentCancelIntents.removeAll { $0 <= asOf.ms - 90 * Timestamp.millisecondsPerDay }
            withFailureToChurn(&c, &a, months: (m - 1)...m) { c, a in setFlag(&c, &a, m, MonthFlags.cancelIntent) }
        }
    }

    // MARK: Distinct counts: monthly flags only ever get set, so a flag's first setting counts once.

    static func setFlag(_ c: inout CustomerState, _ a: inout Aggregates, _ m: Int32, _ flag: UInt8) {
        var f = c.months[m] ?? MonthFlags()
        guard let added = setting(flag, in: &f) else { return }
        c.months[m] = f
        if added != .zero { a.engagement[CellKey(m, 0), default: .zero] &+= added }
    }

    /// Sets `flag` in a month's flags; returns what its first setting adds to that month's engagement row, or
    /// nil when it was already set.
    @inline(__always) static func setting(_ flag: UInt8, in f: inout MonthFlags) -> Cell? {
        guard !f.has(flag) else { return nil }
        f.flags |= flag
        switch flag {
        case MonthFlags.active: return unit(0)
        case MonthFlags.coreActive: return unit(3)
        case MonthFlags.billed: return unit(4) &+ (f.has(MonthFlags.cancelIntent) ? unit(6) : .zero)
        case MonthFlags.cancelIntent: return unit(5) &+ (f.has(MonthFlags.billed) ? unit(6) : .zero)
        default: return .zero
        }
    }

    /// The failure-to-churn row a billed month `m` with flags `f` counts in (second key: had a failure).
    @inline(__always) static func churnRow(_ m: Int32, _ f: MonthFlags) -> CellKey {
        CellKey(m, f.has(MonthFlags.failed) ? 1 : 0)
    }

    static func countAttempt(_ c: inout CustomerState, _ a: inout Aggregates, _ invoiceID: String, _ m: Int32, _ plan: Plan, _ rel: Cell) {
        var r = rel
        var planCell = rel
        var inv = c.invoices[invoiceID] ?? InvoiceState()
        let bit = UInt8(1) << UInt8(plan.rank)
        let monthBits = inv.attemptMonths[m]
        if monthBits == nil { r[7] = 1 }
        if (monthBits ?? 0) & bit == 0 { planCell[7] = 1 }
        inv.attemptMonths[m] = (monthBits ?? 0) | bit
        c.invoices[invoiceID] = inv
        a.reliability[CellKey(m, 0), default: .zero] &+= r
        a.reliability[CellKey(m, Int32(plan.rank)), default: .zero] &+= planCell
    }

    // MARK: Contributions that depend on several of a customer's events: retract, change, re-add.

    static func withSubscriptions(_ c: inout CustomerState, _ a: inout Aggregates, _ body: (inout CustomerState) -> Void) {
        addMrr(c, &a, -1)
        addCohort(c, &a, -1)
        body(&c)
        addMrr(c, &a, 1)
        addCohort(c, &a, 1)
    }

    static func withCohort(_ c: inout CustomerState, _ a: inout Aggregates, _ body: (inout CustomerState) -> Void) {
        addCohort(c, &a, -1)
        body(&c)
        addCohort(c, &a, 1)
    }

    /// Retracts and re-adds the failure-to-churn contributions of `months`, the months whose contribution
    /// `body` can change; only contributions that changed are touched. A month's contribution reads its own
    /// billed and failed flags, cancel intent in it or the next month, cancellations in it or the two next, and
    /// feature use in the months either side; so a change in month x reaches x (billed, failed), x-1...x
    /// (cancel intent) or x-2...x (cancellation); feature use is added directly (see `.featureUsed`).
    static func withFailureToChurn(_ c: inout CustomerState, _ a: inout Aggregates, months: ClosedRange<Int32>,
                                   _ body: (inout CustomerState, inout Aggregates) -> Void) {
        assert(months.count <= 3, "at most three months")
        var before = InlineArray<3, (CellKey, Cell)?>(repeating: nil)
        for (i, m) in months.enumerated() { before[i] = failureToChurn(c, m) }
        body(&c, &a)
        for (i, m) in months.enumerated() {
            let old = before[i], new = failureToChurn(c, m)
            if old?.0 == new?.0 && old?.1 == new?.1 { continue }
            if let old { a.failureToChurn[old.0, default: .zero] &-= old.1 }
            if let new { a.failureToChurn[new.0, default: .zero] &+= new.1 }
        }
    }

    static func withRecovery(_ c: inout CustomerState, _ a: inout Aggregates, _ invoiceID: String, _ body: (inout InvoiceState) -> Void) {
        var inv = c.invoices[invoiceID] ?? InvoiceState()
        addRecovery(inv, &a, -1)
        body(&inv)
        addRecovery(inv, &a, 1)
        c.invoices[invoiceID] = inv
    }

    /// New/reactivation starts, expansion, contraction and churn, by month.
    static func addMrr(_ c: CustomerState, _ a: inout Aggregates, _ sign: Int64) {
        var canceledBefore = false
        for s in c.subscriptions {
            let m = Timestamp(ms: s.key.time).month.index
            var cell = Cell.zero
            switch s.kind {
            case let .started(_, mrr): cell[canceledBefore ? 1 : 0] = mrr
            case let .changed(from, to, _):
                if to > from { cell[2] = to - from } else if from > to { cell[3] = from - to }
            case let .canceled(kind, mrr):
                cell[kind == .voluntary ? 4 : 5] = mrr
                canceledBefore = true
            }
            if cell != .zero { a.mrr[CellKey(m, 0), default: .zero] &+= cell &* sign }
        }
    }

    static func addCohort(_ c: CustomerState, _ a: inout Aggregates, _ sign: Int64) {
        guard let signup = c.signedUpAt else { return }
        let sm = signup.month
        var cell = Cell.zero
        cell[0] = 1
        let ttv = c.ttvMilliseconds
        cell[1] = ttv == nil ? 0 : 1
        let converted = c.subscriptions.contains { if case .started = $0.kind { true } else { false } }
        cell[2] = converted ? 1 : 0
        if converted {
            cell[3] = c.mrr(atEndOf: sm.advanced(by: 1)) > 0 ? 1 : 0
            cell[4] = c.mrr(atEndOf: sm.advanced(by: 3)) > 0 ? 1 : 0
        }
        a.cohorts[CellKey(sm.index, 0), default: .zero] &+= cell &* sign
        if let ttv {
            a.cohortTtv[sm.index, default: [:]][ttv / 1000, default: 0] += Int(sign)
        }
    }

    /// The customer's part of the failure-to-churn cohort of month m: nil unless billed in m.
    static func failureToChurn(_ c: CustomerState, _ m: Int32) -> (CellKey, Cell)? {
        guard let f = c.months[m], f.has(MonthFlags.billed) else { return nil }
        func has(_ month: Int32, _ flag: UInt8) -> Bool { c.months[month]?.has(flag) ?? false }
        var cell = Cell.zero
        cell[0] = 1
        cell[1] = has(m, MonthFlags.cancelIntent) || has(m + 1, MonthFlags.cancelIntent) ? 1 : 0
        cell[2] = (m...(m + 2)).contains { has($0, MonthFlags.canceled) } ? 1 : 0
        cell[3] = (m...(m + 2)).contains { has($0, MonthFlags.canceledInvoluntary) } ? 1 : 0
        cell[4] = Int64(c.months[m - 1]?.featureEvents ?? 0)
        cell[5] = Int64(c.months[m + 1]?.featureEvents ?? 0)
        return (churnRow(m, f), cell)
    }

    static func addRecovery(_ inv: InvoiceState, _ a: inout Aggregates, _ sign: Int64) {
        guard let end = inv.end, let ff = inv.firstFailure, !end.paid || end.attempts > 1 else { return }
        var cell = Cell.zero
        if end.paid { cell[0] = 1; cell[1] = end.amount } else { cell[2] = 1; cell[3] = end.amount }
        a.recovery[CellKey(Timestamp(ms: end.key.time).month.index, Int32(ff.reason.index)), default: .zero] &+= cell &* sign
    }
}
