import Events
import Foundation
import Marts

/// A plain batch computation of marts.md over a set of events, written from the spec without the
/// engine's code: the incremental marts must equal it, column for column.
struct ReferenceMarts {
    let events: [Event]
    let months: [Month]
    let asOf: Timestamp

    init(_ input: [Event]) {
        var byID: [String: Event] = [:]
        for e in input where byID[e.eventID] == nil { byID[e.eventID] = e }
        events = byID.values.sorted { a, b in
            a.occurredAt != b.occurredAt ? a.occurredAt < b.occurredAt : a.eventID.utf8.lexicographicallyPrecedes(b.eventID.utf8)
        }
        asOf = events.map(\.occurredAt).max()!
        let lo = events.map(\.occurredAt).min()!.month
        months = Array(lo...asOf.month)
    }

    static func r(_ a: Int64, _ b: Int64) -> MartValue { .rate(b == 0 ? nil : Double(a) / Double(b)) }

    func plan(_ e: Event) -> Plan? {
        switch e.payload {
        case let .paymentSucceeded(_, _, p, _, _, _): p
        case let .paymentFailed(_, _, p, _, _, _, _, _): p
        default: nil
        }
    }

    var revenue: [[MartValue]] {
        var rows: [[MartValue]] = []
        var previous: [String: Int64] = [:]
        for m in months {
            for name in ["all", "enterprise", "premium", "standard"] {
                let succ = events.filter { e in
                    guard case .paymentSucceeded = e.payload, e.occurredAt.month == m else { return false }
                    return name == "all" || plan(e)?.rawValue == name
                }
                func amt(_ e: Event) -> (Int64, Int) {
                    if case let .paymentSucceeded(_, _, _, a, _, att) = e.payload { return (a, att) }
                    return (0, 0)
                }
                let revenue = succ.reduce(Int64(0)) { $0 + amt($1).0 }
                let first = succ.filter { amt($0).1 == 1 }.reduce(Int64(0)) { $0 + amt($1).0 }
                let recovered = succ.filter { amt($0).1 > 1 }.reduce(Int64(0)) { $0 + amt($1).0 }
                let paying = Set(succ.map(\.customerID)).count
                var growth: MartValue = .rate(nil)
                if let p = previous[name], p != 0 { growth = .rate(Double(revenue - p) / Double(p)) }
                previous[name] = revenue
                rows.append([.text(m.description), .text(name), .int(revenue), .int(first), .int(recovered), .int(Int64(succ.count)),
                             .int(Int64(paying)), growth])
            }
        }
        return rows
    }

    func reliabilityRow(_ m: Month, _ planName: String?) -> [MartValue] {
        let atts = events.filter { e in
            guard e.occurredAt.month == m, let p = plan(e) else { return false }
            return planName == nil || p.rawValue == planName
        }
        func info(_ e: Event) -> (ok: Bool, attempt: Int, invoice: String) {
            switch e.payload {
            case let .paymentSucceeded(_, inv, _, _, _, a): (true, a, inv)
            case let .paymentFailed(_, inv, _, _, _, a, _, _): (false, a, inv)
            default: (false, 0, "")
            }
        }
        let attempts = Int64(atts.count)
        let succeeded = Int64(atts.filter { info($0).ok }.count)
        let failed = attempts - succeeded
        let firsts = atts.filter { info($0).attempt == 1 }
        let firstFailures = Int64(firsts.filter { !info($0).ok }.count)
        let retries = atts.filter { info($0).attempt > 1 }
        let retrySuccesses = Int64(retries.filter { info($0).ok }.count)
        let invoices = Int64(Set(atts.map { info($0).invoice }).count)
        return [.int(attempts), .int(succeeded), .int(failed), Self.r(failed, attempts), .int(Int64(firsts.count)), .int(firstFailures),
                Self.r(firstFailures, Int64(firsts.count)), .int(Int64(retries.count)), .int(retrySuccesses), .int(invoices),
                Self.r(attempts, invoices)]
    }

    var reliability: [[MartValue]] { months.map { [.text($0.description)] + reliabilityRow($0, nil) } }
    var reliabilityByPlan: [[MartValue]] {
        months.flatMap { m in ["enterprise", "premium", "standard"].map { [.text(m.description), .text($0)] + reliabilityRow(m, $0) } }
    }

    var failureReasons: [[MartValue]] {
        var rows: [[MartValue]] = []
        for m in months {
            let fails = events.compactMap { e -> (FailureReason, Int64, String)? in
                guard e.occurredAt.month == m, case let .paymentFailed(_, _, _, a, _, _, r, _) = e.payload else { return nil }
                return (r, a, e.customerID)
            }
            for reason in FailureReason.allCases.sorted(by: { $0.rawValue < $1.rawValue }) {
                let f = fails.filter { $0.0 == reason }
                guard !f.isEmpty else { continue }
                rows.append([.text(m.description), .text(reason.rawValue), .text(reason.declineType.rawValue), .int(Int64(f.count)),
                             .int(f.reduce(0) { $0 + $1.1 }), .int(Int64(Set(f.map(\.2)).count)), Self.r(Int64(f.count), Int64(fails.count))])
            }
        }
        return rows
    }

    func customers(_ m: Month, _ match: (Event) -> Bool) -> Set<String> {
        Set(events.filter { $0.occurredAt.month == m && match($0) }.map(\.customerID))
    }
    func isFeature(_ e: Event) -> Bool { if case .featureUsed = e.payload { true } else { false } }
    func isCore(_ e: Event) -> Bool { if case let .featureUsed(_, core, _) = e.payload { core } else { false } }
    func isIssued(_ e: Event) -> Bool { if case .invoiceIssued = e.payload { true } else { false } }
    func isIntent(_ e: Event) -> Bool { if case .cancelIntent = e.payload { true } else { false } }
    func isFailed(_ e: Event) -> Bool { if case .paymentFailed = e.payload { true } else { false } }
    func cancelKind(_ e: Event) -> Cancellation? { if case let .subscriptionCanceled(_, _, _, k) = e.payload { k } else { nil } }

    var engagement: [[MartValue]] {
        months.map { m in
            let features = events.filter { $0.occurredAt.month == m && isFeature($0) }
            let active = Set(features.map(\.customerID))
            let core = features.filter(isCore)
            let billed = customers(m, isIssued)
            let intent = customers(m, isIntent)
            let both = Int64(billed.intersection(intent).count)
            return [.text(m.description), .int(Int64(active.count)), .int(Int64(features.count)), .int(Int64(core.count)),
                    .int(Int64(Set(core.map(\.customerID)).count)), Self.r(Int64(features.count), Int64(active.count)),
                    .int(Int64(billed.count)), .int(Int64(intent.count)), .int(both), Self.r(both, Int64(billed.count))]
        }
    }

    var mrr: [[MartValue]] {
        var starting: Int64 = 0
        var rows: [[MartValue]] = []
        for m in months {
            var new: Int64 = 0, react: Int64 = 0, exp: Int64 = 0, con: Int64 = 0, vol: Int64 = 0, invol: Int64 = 0
            for (i, e) in events.enumerated() where e.occurredAt.month == m {
                switch e.payload {
                case let .subscriptionStarted(_, _, mrr):
                    let earlierCancel = events[..<i].contains { $0.customerID == e.customerID && cancelKind($0) != nil }
                    if earlierCancel { react += mrr } else { new += mrr }
                case let .subscriptionPlanChanged(_, _, _, f, t):
                    if t > f { exp += t - f } else { con += f - t }
                case let .subscriptionCanceled(_, _, mrr, k):
                    if k == .voluntary { vol += mrr } else { invol += mrr }
                default: break
                }
            }
            let ending = starting + new + react + exp - con - vol - invol
            rows.append([.text(m.description), .int(starting), .int(new), .int(react), .int(exp), .int(con), .int(vol), .int(invol),
                         .int(ending), .rate(starting == 0 ? nil : Double(vol + invol + con - exp) / Double(starting))])
            starting = ending
        }
        return rows
    }

    /// customer_360 without the three risk columns.
    var customer360: [[MartValue]] {
        let grouped = Dictionary(grouping: events, by: \.customerID)
        return grouped.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.map { id in
            let evs = grouped[id]!  // already in (time, id) order
            let signup = evs.first { if case .customerSignedUp = $0.payload { true } else { false } }?.occurredAt
            let subs = evs.filter { switch $0.payload { case .subscriptionStarted, .subscriptionPlanChanged, .subscriptionCanceled: true; default: false } }
            var plan = "free", mrr: Int64 = 0, status = "free"
            if let last = subs.last {
                switch last.payload {
                case let .subscriptionStarted(_, p, m): plan = p.rawValue; mrr = m; status = "active"
                case let .subscriptionPlanChanged(_, _, p, _, m): plan = p.rawValue; mrr = m; status = "active"
                default: status = "canceled"
                }
            }
            if status == "active" {
                var failed = Set<String>(), closed = Set<String>()
                for e in evs {
                    switch e.payload {
                    case let .paymentFailed(_, inv, _, _, _, _, _, _): failed.insert(inv)
                    case let .invoicePaid(inv, _, _, _, _), let .invoiceUncollectible(inv, _, _, _, _): closed.insert(inv)
                    default: break
                    }
                }
                if !failed.subtracting(closed).isEmpty { status = "past_due" }
            }
            func count(_ f: (Event) -> Bool) -> Int64 { Int64(evs.filter(f).count) }
            let revenue = evs.reduce(Int64(0)) { if case let .paymentSucceeded(_, _, _, a, _, _) = $1.payload { $0 + a } else { $0 } }
            let lastFail = evs.last(where: isFailed)
            var lastReason: MartValue = .null
            if let lastFail, case let .paymentFailed(_, _, _, _, _, _, r, _) = lastFail.payload { lastReason = .text(r.rawValue) }
            let firstCore = evs.first(where: isCore)?.occurredAt
            var ttv: Int64? = nil
            if let s = signup, let c = firstCore, c.ms >= s.ms, c.ms - s.ms <= 14 * 86_400_000 { ttv = (c.ms - s.ms) / 1000 }
            let lastActive = evs.last(where: isFeature)?.occurredAt
            let window = asOf.ms - 30 * 86_400_000
            let recent = count { isFeature($0) && $0.occurredAt.ms > window && $0.occurredAt.ms <= asOf.ms }
            let recentCore = count { isCore($0) && $0.occurredAt.ms > window && $0.occurredAt.ms <= asOf.ms }
            let zombie = (status == "active" || status == "past_due") && recentCore == 0
            return [.text(id), .time(signup), .text(plan), .text(status), .int(mrr), .int(revenue),
                    .int(count(isIssued)), .int(count { if case .invoicePaid = $0.payload { true } else { false } }),
                    .int(count { if case .invoiceUncollectible = $0.payload { true } else { false } }), .int(count(isFailed)),
                    lastReason, .time(lastFail?.occurredAt), .time(firstCore), .bool(ttv != nil), ttv.map { .int($0) } ?? .null,
                    .time(lastActive), .int(recent), .int(count(isIntent)), .bool(zombie)]
        }
    }

    var failureToChurn: [[MartValue]] {
        var rows: [[MartValue]] = []
        for m in months {
            let cohort = customers(m, isIssued)
            guard !cohort.isEmpty else { continue }
            let failed = customers(m, isFailed)
            for flag in [false, true] {
                let group = cohort.filter { failed.contains($0) == flag }
                let intent = customers(m, isIntent).union(customers(m.next, isIntent))
                let churn = [m, m.next, m.advanced(by: 2)].reduce(Set<String>()) { $0.union(customers($1) { cancelKind($0) != nil }) }
                let invol = [m, m.next, m.advanced(by: 2)].reduce(Set<String>()) { $0.union(customers($1) { cancelKind($0) == .involuntary }) }
                let n = Int64(group.count)
                let ci = Int64(group.filter(intent.contains).count)
                let ch = Int64(group.filter(churn.contains).count)
                let inv = Int64(group.filter(invol.contains).count)
                let before = Int64(events.filter { $0.occurredAt.month == m.previous && isFeature($0) && group.contains($0.customerID) }.count)
                let after = Int64(events.filter { $0.occurredAt.month == m.next && isFeature($0) && group.contains($0.customerID) }.count)
                rows.append([.text(m.description), .bool(flag), .int(n), .int(ci), .int(ch), .int(inv), Self.r(ci, n), Self.r(ch, n),
                             Self.r(before, n), Self.r(after, n)])
            }
        }
        return rows
    }

    var activation: [[MartValue]] {
        let grouped = Dictionary(grouping: events, by: \.customerID)
        var cohorts: [Month: [(ttv: Int64?, converted: Bool, m1: Bool, m3: Bool)]] = [:]
        for (_, evs) in grouped {
            guard let signup = evs.first(where: { if case .customerSignedUp = $0.payload { true } else { false } })?.occurredAt else { continue }
            let firstCore = evs.first(where: isCore)?.occurredAt
            var ttv: Int64? = nil
            if let c = firstCore, c.ms >= signup.ms, c.ms - signup.ms <= 14 * 86_400_000 { ttv = (c.ms - signup.ms) / 1000 }
            let converted = evs.contains { if case .subscriptionStarted = $0.payload { true } else { false } }
            func mrrAtEnd(_ month: Month) -> Int64 {
                var mrr: Int64 = 0
                for e in evs where e.occurredAt.ms < month.next.start.ms {
                    switch e.payload {
                    case let .subscriptionStarted(_, _, m): mrr = m
                    case let .subscriptionPlanChanged(_, _, _, _, m): mrr = m
                    case .subscriptionCanceled: mrr = 0
                    default: break
                    }
                }
                return mrr
            }
            let sm = signup.month
            cohorts[sm, default: []].append((ttv, converted, converted && mrrAtEnd(sm.advanced(by: 1)) > 0, converted && mrrAtEnd(sm.advanced(by: 3)) > 0))
        }
        return cohorts.keys.sorted().map { m in
            let c = cohorts[m]!
            let n = Int64(c.count)
            let ttvs = c.compactMap(\.ttv).sorted()
            let conv = Int64(c.filter(\.converted).count)
            let median: MartValue = ttvs.isEmpty ? .null : .int(ttvs[(ttvs.count - 1) / 2])
            return [.text(m.description), .int(n), .int(Int64(ttvs.count)), Self.r(Int64(ttvs.count), n), median, .int(conv), Self.r(conv, n),
                    m.advanced(by: 1) > asOf.month ? .null : .int(Int64(c.filter(\.m1).count)),
                    m.advanced(by: 3) > asOf.month ? .null : .int(Int64(c.filter(\.m3).count))]
        }
    }

    var recovery: [[MartValue]] {
        var firstFailure: [String: (Int, FailureReason)] = [:]
        for e in events {  // in (time, id) order: the first seen with the lowest attempt wins
            if case let .paymentFailed(_, inv, _, _, _, a, r, _) = e.payload, firstFailure[inv].map({ a < $0.0 }) ?? true {
                firstFailure[inv] = (a, r)
            }
        }
        var ended = Set<String>()
        var cells: [String: [Int64]] = [:]
        for e in events {
            switch e.payload {
            case let .invoicePaid(inv, _, amount, _, attempts), let .invoiceUncollectible(inv, _, amount, _, attempts):
                guard !ended.contains(inv) else { continue }
                ended.insert(inv)
                let paid = e.type == .invoicePaid
                guard !paid || attempts > 1, let ff = firstFailure[inv] else { continue }
                let key = e.occurredAt.month.description + "|" + ff.1.rawValue
                var c = cells[key] ?? [0, 0, 0, 0]
                if paid { c[0] += 1; c[1] += amount } else { c[2] += 1; c[3] += amount }
                cells[key] = c
            default: break
            }
        }
        return cells.keys.sorted().map { k in
            let parts = k.split(separator: "|").map(String.init)
            let c = cells[k]!
            return [.text(parts[0]), .text(parts[1]), .int(c[0]), .int(c[1]), .int(c[2]), .int(c[3]), Self.r(c[0], c[0] + c[2])]
        }
    }
}
