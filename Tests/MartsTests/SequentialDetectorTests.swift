import Config
import Events
import Foundation
@testable import Marts
import Simulation
import Testing
import TestSupport

/// First attempts of the premium plan at `perMinute` a minute on average (a thin stream has minutes without
/// any), each failing with probability `failureRate(minute)`: with insufficient funds at the baseline, with
/// gateway timeouts above it.
func meteredAttempts(minutes: Int, perMinute: Double, seed: UInt64, baseline: Double = 0.04, failureRate: (Int) -> Double) -> [Event] {
    var rng = Xoshiro(seed: seed)
    let start = Timestamp(year: 2025, month: 1, day: 1)
    var out: [Event] = []
    out.reserveCapacity(Int(Double(minutes) * perMinute) + 16)
    for m in 0..<minutes {
        let n = Int(perMinute) + (rng.chance(perMinute - Double(Int(perMinute))) ? 1 : 0)
        let rate = failureRate(m)
        for i in 0..<n {
            let t = start.adding(ms: Int64(m) * 60_000 + Int64(i * 60_000 / max(n, 1)))
            let id = "e\(m)_\(i)"
            let u = rng.uniform(0, 1)
            let payload: Event.Payload
            if u < baseline {
                payload = .paymentFailed(paymentID: id, invoiceID: id, plan: .premium, amountCents: 100, currency: "USD", attempt: 1,
                                         failureReason: .insufficientFunds, nextRetryAt: nil)
            } else if u < rate {
                payload = .paymentFailed(paymentID: id, invoiceID: id, plan: .premium, amountCents: 100, currency: "USD", attempt: 1,
                                         failureReason: .gatewayTimeout, nextRetryAt: nil)
            } else {
                payload = .paymentSucceeded(paymentID: id, invoiceID: id, plan: .premium, amountCents: 100, currency: "USD", attempt: 1)
            }
            out.append(Event(eventID: id, occurredAt: t, customerID: "c\(i)", payload: payload))
        }
    }
    return out
}

/// First attempts on one plan, `perMinute` a minute, each customer and id prefixed by the plan: 1% fail with
/// insufficient funds, and a share `gatewayTimeouts(minute)` with gateway_timeout.
func planAttempts(_ plan: Plan, minutes: Int, perMinute: Double, seed: UInt64, gatewayTimeouts: (Int) -> Double) -> [Event] {
    var rng = Xoshiro(seed: seed)
    let start = Timestamp(year: 2025, month: 1, day: 1)
    var out: [Event] = []
    for m in 0..<minutes {
        let n = Int(perMinute) + (rng.chance(perMinute - Double(Int(perMinute))) ? 1 : 0)
        let timeouts = gatewayTimeouts(m)
        for i in 0..<n {
            let id = "\(plan.rawValue)\(m)_\(i)"
            let u = rng.uniform(0, 1)
            let payload: Event.Payload
            if u < 0.01 + timeouts {
                payload = .paymentFailed(paymentID: id, invoiceID: id, plan: plan, amountCents: 100, currency: "USD", attempt: 1,
                                         failureReason: u < 0.01 ? .insufficientFunds : .gatewayTimeout, nextRetryAt: nil)
            } else {
                payload = .paymentSucceeded(paymentID: id, invoiceID: id, plan: plan, amountCents: 100, currency: "USD", attempt: 1)
            }
            out.append(Event(eventID: id, occurredAt: start.adding(ms: Int64(m) * 60_000 + Int64(i * 60_000 / max(n, 1))),
                             customerID: "\(plan.rawValue)\(i)", payload: payload))
        }
    }
    return out
}

@Suite struct SequentialDetectorTests {
    static let rules = AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: SequentialAlerting())

    /// Long stationary streams at three volumes (a small SaaS to a busy processor), three seeds each: the false
    /// alerts stay within the budget the config states (0.5 a month for the whole business) over the 13 simulated
    /// months. Seeds are fixed, so the outcome is too; the tolerance is the budget itself.
    @Test func stationaryStreamsStayWithinTheFalseAlarmBudget() {
        var falseAlerts: [Alert] = []
        var months = 0.0
        for (perMinute, days) in [(0.2, 90), (2.0, 30), (20.0, 10)] {
            for seed: UInt64 in [1, 2, 3] {
                let events = meteredAttempts(minutes: days * 24 * 60, perMinute: perMinute, seed: seed) { _ in 0.04 }
                falseAlerts += run(events, rules: Self.rules).filter { $0.state == .firing }
                months += Double(days) / 30.44
            }
        }
        let budget = Self.rules.sequential!.falseAlertsPerMonth * months
        #expect(Double(falseAlerts.count) <= budget, "\(falseAlerts.count) false alerts in \(months) months: \(falseAlerts.map { "\($0.scope) \($0.at)" })")
    }

    /// A thin scope with a rare failure reason learns its true rate: minutes held out of the baseline while the scope
    /// looked suspicious go back into it once the suspicion clears without an alert. Left out for good, a thin
    /// scope's clustered chance failures never reached its baseline while its successes did, so it sat below the true
    /// rate and the next chance failures looked like an outage. One scope (overall), 0.1 attempts a minute failing
    /// 0.3% of the time for 400 days, four seeds: the baseline's mean over the last 300 days is within 20% of the
    /// truth, the false alerts of the four seeds together stay within the budget (26.3 in their 1,600 days; one seed
    /// alone may exceed its 6.6 by chance, since the thresholds are calibrated to spend it; without the held minutes
    /// returned: 0.042-0.044% and 19 to 23 false alerts a seed), and the scope was suspicious (minutes held) at some
    /// point, so the case is exercised.
    @Test func aThinScopesBaselineLearnsItsRareFailuresToo() {
        let config = SequentialAlerting(scopes: [.overall])
        let truth = 0.003
        var falseAlerts: [Int] = []
        for seed: UInt64 in [1, 2, 3, 4] {
            var detector = SequentialDetector(config: config)
            var rng = Xoshiro(seed: seed)
            var sum = 0.0, samples = 0, held = 0, alerts = 0
            for minute in 0..<Int64(400 * 24 * 60) {
                guard let counts = Self.thinMinute(&rng, failing: truth) else { continue }
                alerts += detector.observe(minute: minute, counts: counts).count { $0.state == .firing }
                if detector.scopes[0].heldAttempts > 0 { held += 1 }
                if minute >= 100 * 24 * 60 {
                    sum += detector.baseline(detector.scopes[0])
                    samples += 1
                }
            }
            let mean = sum / Double(samples)
            #expect(held > 0, "seed \(seed): never suspicious")
            #expect(abs(mean / truth - 1) < 0.2, "seed \(seed): baseline \(mean) against \(truth), \(alerts) alert(s)")
            falseAlerts.append(alerts)
        }
        // Every alert is false here: no more than the budget allows in the four seeds' 1,600 days.
        #expect(Double(falseAlerts.reduce(0, +)) <= config.falseAlertsPerMonth * 4 * 400 / 30.44, "false alerts by seed: \(falseAlerts)")
    }

    /// A minute of a thin stream in the engine's counter layout (first attempts, scope 0 = overall): an attempt with
    /// probability 0.1, failing with probability `failing`; nil for a minute without one.
    static func thinMinute(_ rng: inout Xoshiro, failing: Double) -> [Int32]? {
        guard rng.chance(0.1) else { return nil }
        var counts = [Int32](repeating: 0, count: AlertEngine.scopeCount * 4)
        counts[0] = 1
        counts[1] = rng.chance(failing) ? 1 : 0
        return counts
    }

    /// The held counts and the attempt rate's count are part of the checkpointed state; a state written before either
    /// existed (without them at its end) still restores, with nothing held and the rate its baseline gave; bytes after
    /// the end are refused.
    @Test func heldCountsAreCheckpointedAndAnEarlierStateStillRestores() throws {
        let config = SequentialAlerting(scopes: [.overall])
        var detector = SequentialDetector(config: config)
        var rng = Xoshiro(seed: 5)
        var minute: Int64 = 0
        while detector.scopes[0].heldAttempts == 0 || detector.scopes[0].heldFailures == 0 {
            minute += 1
            guard let counts = Self.thinMinute(&rng, failing: 0.003) else { continue }
            _ = detector.observe(minute: minute, counts: counts)
            try #require(minute < 10_000_000, "never suspicious")
        }
        let bytes = detector.encoded()
        #expect(try SequentialDetector(config: config, encoded: bytes) == detector)
        // After the scopes: 16 bytes of held counts per scope, then 8 of the attempt rate's count (one scope here).
        // A state written before the rate's count restores with the count its baseline's rate gives.
        let beforeRate = try SequentialDetector(config: config, encoded: Array(bytes.dropLast(8 * detector.scopes.count)))
        var withBaselineRate = detector
        withBaselineRate.scopes[0].rateAttempts = detector.rateCount(fromBaselineOf: detector.scopes[0])
        #expect(beforeRate == withBaselineRate)
        // The steady stream's rate, either way, within 10% (0.1 attempts a minute).
        for d in [detector, beforeRate] {
            let perMinute = d.attemptsPerMinute(d.scopes[0], minute: d.scopes[0].baselineMinute)
            #expect(abs(perMinute - 0.1) < 0.01, "\(perMinute)")
        }
        // And one written before the held counts, with nothing held.
        let earlier = try SequentialDetector(config: config, encoded: Array(bytes.dropLast(24 * detector.scopes.count)))
        #expect(earlier.scopes[0].heldAttempts == 0 && earlier.scopes[0].heldFailures == 0)
        withBaselineRate.scopes[0].heldAttempts = 0
        withBaselineRate.scopes[0].heldFailures = 0
        #expect(earlier == withBaselineRate)
        #expect(throws: (any Error).self) { try SequentialDetector(config: config, encoded: bytes + [0]) }
        #expect(throws: (any Error).self) { try SequentialDetector(config: config, encoded: Array(bytes.dropLast(1))) }
    }

    /// The attempt rate that sets the thresholds has a week's memory, not the baseline's 28 days: after the volume
    /// doubles it reads within 10% of the new rate three weeks later, where the baseline's counts would still read
    /// about 30% below it (asserted: under 1.7 a minute against 2).
    @Test func theAttemptRateFollowsAGrowingBusiness() {
        let config = SequentialAlerting(scopes: [.overall])
        var detector = SequentialDetector(config: config)
        let day: Int64 = 24 * 60
        // 1 attempt a minute for 120 days, then 2 a minute for 21 days; nothing fails.
        var counts = [Int32](repeating: 0, count: AlertEngine.scopeCount * 4)
        for minute in 0..<(141 * day) {
            counts[0] = minute < 120 * day ? 1 : 2
            _ = detector.observe(minute: minute, counts: counts)
        }
        let d = detector.scopes[0], now = 141 * day - 1
        let rate = detector.attemptsPerMinute(d, minute: now)
        #expect(abs(rate - 2) < 0.2, "\(rate)")
        let tau = detector.tau, elapsed = Double(now + 1)
        let baselineRate = d.baseAttempts / (tau * (1 - exp(-elapsed / tau)))
        #expect(baselineRate < 1.7, "\(baselineRate)")
    }

    /// A step from 4% to 40% failing after a week, at three volumes: detected within twice the delay of an
    /// oracle that knows both rates (in the overall scope, the detector's slowest) plus one evaluation minute;
    /// the alert explains itself; it resolves after the rate is back, within two hours.
    @Test(arguments: [0.5, 5.0, 50.0])
    func aStepChangeIsDetectedWithinTwiceTheOracleAndResolves(perMinute: Double) throws {
        let week = 7 * 24 * 60, outage = 12 * 60
        let events = meteredAttempts(minutes: week + outage + 12 * 60, perMinute: perMinute, seed: 5) { m in
            (week..<(week + outage)).contains(m) ? 0.40 : 0.04
        }
        let alerts = run(events, rules: Self.rules)
        let fired = try #require(alerts.first { $0.state == .firing }, "not detected at \(perMinute)/min")
        let shiftStart = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(week) * 60_000)
        let delay = Double(fired.at.ms - shiftStart.ms) / 60_000
        // The oracle, computed here from first principles: ln(ARL₀) / KL(p₁‖p₀) attempts.
        let config = Self.rules.sequential!
        let scopes = 1 + 3 + 11 + 33
        let arl0 = perMinute * 30.44 * 24 * 60 / (config.falseAlertsPerMonth / Double(scopes * config.shifts.count))
        let (p0, p1) = (0.04, 0.40)
        let kl = p1 * log(p1 / p0) + (1 - p1) * log((1 - p1) / (1 - p0))
        let oracle = log(arl0) / kl / perMinute
        #expect(delay >= 0 && delay <= 2 * oracle + 1, "delay \(delay) min, oracle \(oracle) min at \(perMinute)/min")
        // It explains itself.
        #expect(fired.observedRate > 0.2 && fired.baselineRate < 0.1)
        let start = try #require(fired.shiftStart)
        #expect(abs(Double(start.ms - shiftStart.ms)) <= max(60, 3 * oracle) * 60_000, "estimated start \(start), true \(shiftStart)")
        #expect(fired.attempts > 0 && fired.failures > 0 && (fired.evidence ?? 0) > 0)
        #expect(fired.json.contains("\"shift_started\":") && fired.json.contains("\"evidence\":"))
        // Resolved once the rate is back: after the outage, and within 2 hours of its end at every volume (0.6 h at
        // 0.5 attempts a minute). The recovery test weighs the baseline against the outage's rate as measured so
        // far; against the smallest shift tuned for (8%), telling 4% from it took 7.3 hours at 0.5 a minute.
        // And one page per scope: it does not resolve while the outage lasts and fire again.
        let resolved = try #require(alerts.first { $0.state == .resolved && $0.scope == fired.scope })
        #expect(resolved.at.ms > shiftStart.ms + Int64(outage) * 60_000)
        #expect(resolved.at.ms <= shiftStart.ms + Int64(outage + 2 * 60) * 60_000,
                "resolved \(Double(resolved.at.ms - shiftStart.ms) / 3_600_000 - 12) h after the outage's end at \(perMinute)/min")
        #expect(alerts.filter { $0.state == .firing && $0.scope == fired.scope }.count == 1)
    }

    /// `chanceResolutionDays` sets how much evidence a busy scope needs to resolve: the same outage (4% to 40% for
    /// 12 hours, 5 attempts a minute) resolves later when a chance resolution may come once in ten years of the
    /// scope's attempts than once in a quarter of an hour (where `resolveEvidence` alone decides), and after its end
    /// either way. A file that leaves the key out has the fingerprint it had before the key existed.
    @Test func chanceResolutionDaysSetsTheEvidenceABusyScopeNeedsToResolve() throws {
        let week = 7 * 24 * 60, outage = 12 * 60
        let events = meteredAttempts(minutes: week + outage + 12 * 60, perMinute: 5, seed: 5) { m in
            (week..<(week + outage)).contains(m) ? 0.40 : 0.04
        }
        let end = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(week + outage) * 60_000)
        func resolution(days: Double) throws -> Timestamp {
            var config = SequentialAlerting()
            config.chanceResolutionDays = days
            let rules = AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: config)
            let alerts = run(events, rules: rules)
            let fired = try #require(alerts.first { $0.state == .firing })
            return try #require(alerts.first { $0.state == .resolved && $0.scope == fired.scope }).at
        }
        let quick = try resolution(days: 0.01), slow = try resolution(days: 3650)
        #expect(quick > end && slow > end)
        #expect(slow > quick, "resolved at \(slow) with 3650 days, \(quick) with 0.01")

        #expect(!Self.rules.fingerprint.contains("chanceResolutionDays"))
        var other = SequentialAlerting()
        other.chanceResolutionDays = 30
        let rules = AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: other)
        #expect(rules.fingerprint != Self.rules.fingerprint)
        #expect(try JSONDecoder().decode(AlertRules.self, from: Data(rules.fingerprint.utf8)) == rules)
        // `SequentialAlerting.encode(to:)` is written by hand: every stored setting must be in it, or two files
        // that differ in a new one would share a fingerprint (and one's alert checkpoint restore under the other).
        other.resolveWithWiderScope = false  // (the other keys written only when not at their defaults)
        other.resolveWithNarrowerScope = false
        let written = try JSONSerialization.jsonObject(with: JSONEncoder().encode(other)) as? [String: Any]
        #expect(written?.count == Mirror(reflecting: other).children.count, "\(written?.keys.sorted() ?? [])")
    }

    /// A thin scope resolves with a wider one containing it. A gateway outage (50% of first attempts for 6 hours)
    /// hits a busy plan (standard, 3 attempts a minute) and a thin one (premium, 0.2 a minute): reason
    /// gateway_timeout sees both and resolves soon after the end, premium × gateway_timeout alone would wait for
    /// its own few clean attempts. With `resolveWithWiderScope` it resolves with its plan or its reason, saying
    /// which (`resolvedWith`), at the same minute; without, later and on its own evidence. The alerts that fire
    /// are the same either way (no scope fires again), and nothing resolves before the outage ends.
    @Test func aThinScopeResolvesWithTheWiderScopeContainingIt() throws {
        let week = 7 * 24 * 60, outage = 6 * 60, minutes = week + outage + 3 * 24 * 60
        let rate: (Int) -> Double = { m in (week..<(week + outage)).contains(m) ? 0.5 : 0.04 }
        let busy = meteredAttempts(minutes: minutes, perMinute: 3, seed: 21, failureRate: rate).map { e -> Event in
            guard case let .paymentFailed(id, invoice, _, amount, currency, attempt, reason, retry) = e.payload else {
                guard case let .paymentSucceeded(id, invoice, _, amount, currency, attempt) = e.payload else { return e }
                return Event(eventID: "s" + e.eventID, occurredAt: e.occurredAt, customerID: "s" + e.customerID,
                             payload: .paymentSucceeded(paymentID: "s" + id, invoiceID: "s" + invoice, plan: .standard, amountCents: amount,
                                                        currency: currency, attempt: attempt))
            }
            return Event(eventID: "s" + e.eventID, occurredAt: e.occurredAt, customerID: "s" + e.customerID,
                         payload: .paymentFailed(paymentID: "s" + id, invoiceID: "s" + invoice, plan: .standard, amountCents: amount, currency: currency,
                                                 attempt: attempt, failureReason: reason, nextRetryAt: retry))
        }
        let thin = meteredAttempts(minutes: minutes, perMinute: 0.2, seed: 22, failureRate: rate)
        let events = (busy + thin).sorted { $0.occurredAt < $1.occurredAt }
        let end = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(week + outage) * 60_000)
        func alerts(together: Bool) -> [Alert] {
            var config = SequentialAlerting()
            config.resolveWithWiderScope = together
            config.resolveWithNarrowerScope = false  // (this test is about the wider scope alone)
            return run(events, rules: AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: config))
        }
        let with = alerts(together: true), alone = alerts(together: false)
        let narrow = "plan:premium/reason:gateway_timeout"
        #expect(with.filter { $0.state == .firing } == alone.filter { $0.state == .firing })
        #expect(with.contains { $0.state == .firing && $0.scope == narrow }, "\(with.map { "\($0.state) \($0.scope)" })")
        #expect(alone.allSatisfy { $0.resolvedWith == nil })
        #expect(with.filter { $0.state == .resolved }.allSatisfy { $0.at > end })
        let together = try #require(with.first { $0.state == .resolved && $0.scope == narrow })
        let wider = try #require(together.resolvedWith)
        #expect(["plan:premium", "reason:gateway_timeout"].contains(wider))
        #expect(with.contains { $0.state == .resolved && $0.scope == wider && $0.at == together.at })
        let byItself = try #require(alone.first { $0.state == .resolved && $0.scope == narrow })
        #expect(byItself.at.ms - together.at.ms > 60 * 60_000, "alone at \(byItself.at), with its wider scope at \(together.at)")
        #expect(together.json.contains("\"resolved_with\":\"\(wider)\""))
    }

    /// A thin scope firing since long before is not resolved by a wider scope's later episode. A premium gateway
    /// outage (0.1 attempts a minute, 50% failing) lasts two days; a day into it, standard's gateway (10 a minute)
    /// fails 40% for three hours, which fires `overall`, `reason:gateway_timeout` and standard's scopes, and they
    /// resolve soon after its end, while premium's outage goes on. `plan:premium` (inside `overall`) and
    /// premium × gateway_timeout (inside the reason) fired a day before that episode began: they stay firing until
    /// their own outage is over. Six seeds. Without the episode check, each of them resolves with the wider scope
    /// whenever its own last attempt happened to succeed (its recovery test above zero), about half the time.
    @Test func aWiderScopesLaterEpisodeDoesNotResolveAScopeFiringSinceBefore() throws {
        let week = 7 * 24 * 60, day = 24 * 60
        let premiumOutage = week..<(week + 2 * day), standardOutage = (week + day)..<(week + day + 3 * 60)
        let start = Timestamp(year: 2025, month: 1, day: 1)
        func at(_ minute: Int) -> Timestamp { start.adding(ms: Int64(minute) * 60_000) }
        var early: [String] = [], widerResolvedDuring = 0
        for seed: UInt64 in 1...6 {
            let premium = planAttempts(.premium, minutes: week + 3 * day, perMinute: 0.1, seed: seed) { m in
                premiumOutage.contains(m) ? 0.5 : 0.01
            }
            let standard = planAttempts(.standard, minutes: week + 3 * day, perMinute: 10, seed: seed + 100) { m in
                standardOutage.contains(m) ? 0.4 : 0.01
            }
            let alerts = run((premium + standard).sorted { $0.occurredAt < $1.occurredAt }, rules: Self.rules)
            let premiumScopes = ["plan:premium", "plan:premium/reason:gateway_timeout"]
            for scope in premiumScopes {
                let fired = try #require(alerts.first { $0.state == .firing && $0.scope == scope }, "seed \(seed): \(scope) never fired")
                #expect(fired.at < at(standardOutage.lowerBound), "seed \(seed): \(scope) fired at \(fired.at)")
            }
            // The wider scopes' episode: fired in standard's outage, resolved before premium's ended.
            for wider in ["overall", "reason:gateway_timeout"] {
                let fired = try #require(alerts.first { $0.state == .firing && $0.scope == wider }, "seed \(seed): \(wider) never fired")
                #expect(fired.at >= at(standardOutage.lowerBound))
                if alerts.contains(where: { $0.state == .resolved && $0.scope == wider && $0.at < at(premiumOutage.upperBound) }) { widerResolvedDuring += 1 }
            }
            early += alerts.filter { $0.state == .resolved && premiumScopes.contains($0.scope) && $0.at < at(premiumOutage.upperBound) }
                .map { "seed \(seed): \($0.scope) resolved at \($0.at) with \($0.resolvedWith ?? "its own evidence")" }
        }
        #expect(widerResolvedDuring == 12, "the wider scopes resolved during premium's outage \(widerResolvedDuring) times of 12")
        #expect(early.isEmpty, "\(early)")
    }

    /// The case resolving with a wider scope gets wrong, and what follows. A gateway outage starts on both plans;
    /// standard's part (10 attempts a minute) ends after three hours, premium's (0.1 a minute, 50% failing) lasts a
    /// day. When `overall` and the reason resolve, premium's thin scopes have no attempts of their own since to say
    /// otherwise, and whenever their last attempt succeeded they resolve with them (measured: in 5 of these 12
    /// seeds; with the key off, in none). They are not left silent: their CUSUMs, reset, fire again while the
    /// outage lasts, and the last resolution of each comes after its end, as with the key off.
    @Test func aThinScopeResolvedWhileItsOutageGoesOnFiresAgain() throws {
        let week = 7 * 24 * 60, day = 24 * 60
        let premiumOutage = week..<(week + day), standardOutage = week..<(week + 3 * 60)
        let end = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(premiumOutage.upperBound) * 60_000)
        let premiumScopes = ["plan:premium", "plan:premium/reason:gateway_timeout"]
        var resolvedEarly = 0
        for seed: UInt64 in 1...12 {
            let premium = planAttempts(.premium, minutes: week + 3 * day, perMinute: 0.1, seed: seed) { m in premiumOutage.contains(m) ? 0.5 : 0.01 }
            let standard = planAttempts(.standard, minutes: week + 3 * day, perMinute: 10, seed: seed + 100) { m in standardOutage.contains(m) ? 0.4 : 0.01 }
            let alerts = run((premium + standard).sorted { $0.occurredAt < $1.occurredAt }, rules: Self.rules)
                .filter { premiumScopes.contains($0.scope) && $0.at.ms >= end.ms - Int64(day) * 60_000 }  // (seed 12 has a false alert a day and a half before)
            for scope in premiumScopes {
                let own = alerts.filter { $0.scope == scope }
                let last = try #require(own.last, "seed \(seed): \(scope) never fired")
                #expect(last.state == .resolved && last.at > end, "seed \(seed): \(scope) ends \(last.state) at \(last.at)")
                // Each resolution before the end is followed by a firing before the end.
                for (k, a) in own.enumerated() where a.state == .resolved && a.at < end {
                    resolvedEarly += 1
                    #expect(a.resolvedWith != nil, "seed \(seed): \(scope) resolved on its own evidence at \(a.at)")
                    let again = own.dropFirst(k + 1).first
                    #expect(again?.state == .firing && again!.at < end, "seed \(seed): \(scope) resolved at \(a.at) and stayed silent")
                }
            }
        }
        #expect(resolvedEarly > 0, "the case this test is about did not happen in any seed")
    }

    /// Which scopes contain which, and the episode a narrower scope's shift must have begun in to resolve with a
    /// wider one: no earlier before the wider shift's start than that shift lasted (an hour at least).
    @Test func aNarrowerScopeResolvesWithAWiderOneOnlyForTheSameEpisode() {
        #expect(SequentialDetector.widerScopes(of: "plan:premium/reason:gateway_timeout") == ["plan:premium", "reason:gateway_timeout"])
        #expect(SequentialDetector.widerScopes(of: "plan:premium") == ["overall"])
        #expect(SequentialDetector.widerScopes(of: "reason:expired_card") == ["overall"])
        #expect(SequentialDetector.widerScopes(of: "overall").isEmpty)
        // A wider shift from minute 1000, resolved at the end of minute 1299 (300 minutes).
        #expect(SequentialDetector.sameEpisode(narrowerStart: 1000, widerStart: 1000, minute: 1299))
        #expect(SequentialDetector.sameEpisode(narrowerStart: 700, widerStart: 1000, minute: 1299))
        #expect(!SequentialDetector.sameEpisode(narrowerStart: 699, widerStart: 1000, minute: 1299))
        #expect(SequentialDetector.sameEpisode(narrowerStart: 1200, widerStart: 1000, minute: 1299))
        // A short one: an hour's margin.
        #expect(SequentialDetector.sameEpisode(narrowerStart: 941, widerStart: 1000, minute: 1009))
        #expect(!SequentialDetector.sameEpisode(narrowerStart: 939, widerStart: 1000, minute: 1009))
    }

    /// An outage still under way does not look over: at a moderate rise (4% to 25% failing for a day) and a thin
    /// stream, a CUSUM tuned far above the outage can fire on a lucky run of failures, and the rate seen by then
    /// overstates it. Weighed against that rate, the attempts that follow favour the baseline and the alert resolves
    /// while the outage lasts, then fires again. Eight seeds, two volumes: no scope resolves before the outage ends.
    @Test func anOutageStillUnderWayDoesNotLookOver() {
        let week = 7 * 24 * 60, outage = 24 * 60
        let end = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(week + outage) * 60_000)
        var early: [String] = [], fired = 0
        for perMinute in [0.5, 2.0] {
            for seed: UInt64 in 1...8 {
                let events = meteredAttempts(minutes: week + outage + 12 * 60, perMinute: perMinute, seed: seed) { m in
                    (week..<(week + outage)).contains(m) ? 0.25 : 0.04
                }
                let alerts = run(events, rules: Self.rules)
                fired += alerts.filter { $0.state == .firing }.count
                early += alerts.filter { $0.state == .resolved && $0.at < end }.map { "\(perMinute)/min seed \(seed): \($0.scope) resolved \($0.at)" }
            }
        }
        #expect(fired >= 16, "the outage was caught in too few runs to say anything")
        #expect(early.isEmpty, "\(early)")
    }

    /// A thin wider scope resolves with the narrower scope that carried its outage. A plan seeing 4 first attempts an
    /// hour, 6.8% failing (insufficient funds), has a 12-hour gateway outage failing 60% of them (the standard plan's
    /// volume at 30,000 customers). plan × gateway_timeout (its baseline near zero) shows the outage over within a few
    /// clean attempts; the plan itself must tell 6.8% from the outage's rate on its own, which takes up to a day
    /// where the outage's few attempts left that rate uncertain. With `resolveWithNarrowerScope` the plan resolves
    /// with its plan × reason, naming it, once that resolves; without, on its own evidence. Eight seeds: the same
    /// alerts fire either way (no scope fires again), nothing resolves before the outage ends, the plan resolves with
    /// a narrower scope in at least half the seeds and never later than alone, and its longest wait after the end
    /// is at most half as long (measured: 4.9 hours against 25.5; 25 hours in all against 57).
    @Test func aWiderScopeResolvesWithTheNarrowerScopeThatCarriedItsOutage() throws {
        let warmUp = 14 * 24 * 60, outage = 12 * 60
        let end = Timestamp(year: 2025, month: 1, day: 1).adding(ms: Int64(warmUp + outage) * 60_000)
        var hours: (with: [Double], alone: [Double]) = ([], []), withNarrower = 0
        for seed: UInt64 in 1...8 {
            let events = meteredAttempts(minutes: warmUp + outage + 14 * 24 * 60, perMinute: 4.0 / 60, seed: seed, baseline: 0.068) { m in
                (warmUp..<(warmUp + outage)).contains(m) ? 0.6 : 0
            }
            func alerts(narrower: Bool) -> [Alert] {
                var config = SequentialAlerting()
                config.resolveWithNarrowerScope = narrower
                return run(events, rules: AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: config))
                    .filter { $0.at.ms > end.ms - Int64(outage) * 60_000 }
            }
            let with = alerts(narrower: true), alone = alerts(narrower: false)
            #expect(with.filter { $0.state == .firing } == alone.filter { $0.state == .firing }, "seed \(seed)")
            #expect(!with.contains { $0.state == .resolved && $0.at < end }, "seed \(seed): \(with.map { "\($0.state) \($0.scope) \($0.at)" })")
            #expect(alone.allSatisfy { a in a.resolvedWith.map { SequentialDetector.widerScopes(of: a.scope).contains($0) } ?? true },
                    "seed \(seed): a scope resolved with a narrower one with the key off")
            for (list, key) in [(with, true), (alone, false)] {
                let plan = list.filter { $0.scope == "plan:premium" }
                let last = try #require(plan.last, "seed \(seed): the plan never fired")
                #expect(plan.count == 2 && last.state == .resolved, "seed \(seed): \(plan.map { "\($0.state) \($0.at)" })")
                let h = Double(last.at.ms - end.ms) / 3_600_000
                if key { hours.with.append(h) } else { hours.alone.append(h) }
                if key, let other = last.resolvedWith {
                    withNarrower += 1
                    #expect(SequentialDetector.widerScopes(of: other).contains("plan:premium"), "seed \(seed): resolved with \(other)")
                    #expect(with.contains { $0.state == .resolved && $0.scope == other && $0.at == last.at })
                }
            }
        }
        #expect(withNarrower >= 4, "the plan resolved with a narrower scope in \(withNarrower) of 8 seeds")
        #expect(zip(hours.with, hours.alone).allSatisfy { $0 <= $1 }, "hours from the end to the plan's resolution: \(hours)")
        #expect(hours.with.max()! <= hours.alone.max()! / 2, "hours from the end to the plan's resolution: \(hours)")
    }

    /// The order the config lists the scopes in changes nothing: resolutions cascade from the narrowest scopes out
    /// and from the widest in whatever it is. The outage above, three seeds, with the scopes listed narrowest first:
    /// the same alerts, minute by minute, and among them wider scopes resolved with narrower ones.
    @Test func theOrderOfTheScopesInTheConfigChangesNoAlert() {
        let warmUp = 14 * 24 * 60, outage = 12 * 60
        func key(_ a: Alert) -> String { "\(a.at) \(a.scope) \(a.state) \(a.resolvedWith ?? "")" }
        var cascaded = 0
        for seed: UInt64 in 1...3 {
            let events = meteredAttempts(minutes: warmUp + outage + 7 * 24 * 60, perMinute: 4.0 / 60, seed: seed, baseline: 0.068) { m in
                (warmUp..<(warmUp + outage)).contains(m) ? 0.6 : 0
            }
            var reversed = SequentialAlerting()
            reversed.scopes = [.planReason, .reason, .plan, .overall]
            let canonical = run(events, rules: Self.rules).map(key).sorted()
            let other = run(events, rules: AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [], sequential: reversed)).map(key).sorted()
            #expect(canonical == other, "seed \(seed)")
            cascaded += canonical.filter { $0.contains(" overall resolved plan:") }.count
        }
        #expect(cascaded > 0, "overall never resolved with a plan: the order was not exercised")
    }

    /// When a narrower scope's resolution explains a wider one's firing: its shift began no more than an hour before
    /// the wider one's, and the wider scope's other failures are within what its baseline less the narrower one's
    /// gives (the Poisson excess under 4.6 nats).
    @Test func aNarrowerScopeExplainsAWiderOneOnlyWhenTheRestIsAtItsBaseline() {
        let start = Timestamp(year: 2025, month: 1, day: 1), base = start.ms / 60_000
        func narrower(startMinute: Int64) -> Alert {
            Alert(rule: "r", scope: "plan:premium/reason:gateway_timeout", state: .resolved, at: start.adding(ms: 2000 * 60_000), firingSince: start,
                  observedRate: 0.4, baselineRate: 0.002, attempts: 50, failures: 20, windowMinutes: 100,
                  shiftStart: start.adding(ms: startMinute * 60_000))
        }
        func wider(failures: Int64, startMinute: Int64 = 1000) -> ScopeDetector.Firing {
            ScopeDetector.Firing(at: 0, shiftStart: base + startMinute, baseline: 0.068, rate: 0.3, recovery: 1, attempts: 50, failures: failures)
        }
        // The wider scope's other failures: 3.3 expected (0.068 × 50 − 0.002 × 50).
        #expect(SequentialDetector.explains(narrower(startMinute: 1000), wider(failures: 23), minute: 2000))
        #expect(SequentialDetector.explains(narrower(startMinute: 1000), wider(failures: 30), minute: 2000))  // 10: 4.4 nats
        #expect(!SequentialDetector.explains(narrower(startMinute: 1000), wider(failures: 31), minute: 2000))  // 11: 5.5 nats
        // A narrower shift from long before the wider one's counts failures the wider one never saw.
        #expect(SequentialDetector.explains(narrower(startMinute: 940), wider(failures: 23), minute: 2000))
        #expect(!SequentialDetector.explains(narrower(startMinute: 939), wider(failures: 23), minute: 2000))
        // One from after it: the wider scope's earlier failures are its own to explain.
        #expect(SequentialDetector.explains(narrower(startMinute: 1500), wider(failures: 23), minute: 2000))
        // No excess at or below the expected count.
        #expect(SequentialDetector.excessEvidence(count: 3, expected: 3.3) == 0)
    }

    /// The scopes `/metrics` exports as `undercurrent_failure_spike_firing`: every watched scope, each firing exactly
    /// between its firing and its resolution alert, whichever engine (sequential or window rules) raised it.
    @Test func theWatchedScopesFireExactlyBetweenAnAlertAndItsResolution() throws {
        let week = 7 * 24 * 60, outage = 12 * 60
        let events = meteredAttempts(minutes: week + outage + 12 * 60, perMinute: 5, seed: 5) { m in
            (week..<(week + outage)).contains(m) ? 0.40 : 0.04
        }
        for rules in [Self.rules, testRules] {
            var engine = AlertEngine(rules: rules)
            let scopes = engine.watchedScopes
            #expect(scopes.count == Set(scopes.map { $0.rule + "|" + $0.scope }).count && scopes.allSatisfy { !$0.firing })
            #expect(scopes.contains { $0.scope == "overall" })
            if rules.sequential != nil { #expect(scopes.contains { $0.scope == "plan:premium" } && scopes.contains { $0.scope == "reason:gateway_timeout" }) }
            var open = Set<String>(), raised = 0
            for e in events {
                for alert in engine.observe(e, source: 0) {
                    let key = alert.rule + "|" + alert.scope
                    if alert.state == .firing { open.insert(key); raised += 1 } else { open.remove(key) }
                }
                let firing = Set(engine.watchedScopes.filter(\.firing).map { $0.rule + "|" + $0.scope })
                if firing != open { Issue.record("firing \(firing.sorted()) at \(e.occurredAt), alerts say \(open.sorted())"); break }
            }
            #expect(raised > 0, "the outage raised no alert under \(rules.rules.map(\.id))")
            #expect(engine.watchedScopes.map { $0.rule + "|" + $0.scope } == scopes.map { $0.rule + "|" + $0.scope })
        }
    }

    /// What the detector says it can catch matches what it catches. After a calm week (4% failing) at a given
    /// volume, the plan's scope states its attempt rate, its baseline and the expected time to catch an outage
    /// failing 40%; the delays measured on that outage, over five seeds, average within a factor of two of it.
    /// Thinner streams need longer, and a scope that has seen too little states no reach at all.
    @Test func theReachItStatesMatchesTheDelaysItAchieves() throws {
        let rules = AlertRules(evaluateEverySeconds: 60, allowedLatenessSeconds: 120, rules: [],
                               sequential: SequentialAlerting(scopes: [.plan]))
        let week = 7 * 24 * 60
        let start = Timestamp(year: 2025, month: 1, day: 1)
        var predicted: [Double] = []
        for perMinute in [0.5, 5.0] {
            var engine = AlertEngine(rules: rules)
            #expect(engine.detectionReach(outageRate: 0.4).isEmpty, "nothing seen: nothing to say")
            let calm = meteredAttempts(minutes: week, perMinute: perMinute, seed: 11) { _ in 0.04 }
            // The first minutes: too few attempts to know the baseline.
            let early = calm.prefix { $0.occurredAt.ms < start.ms + 10 * 60_000 }
            for e in early { _ = engine.observe(e, source: 0) }
            _ = engine.advance(to: early.last!.occurredAt.ms)
            let learning = try #require(engine.detectionReach(outageRate: 0.4).first { $0.scope == "plan:premium" })
            #expect(learning.baselineRate == nil && learning.hoursToDetect == nil)
            for e in calm.dropFirst(early.count) { _ = engine.observe(e, source: 0) }
            let reach = engine.detectionReach(outageRate: 0.4)
            let plan = try #require(reach.first { $0.scope == "plan:premium" })
            #expect(abs(plan.attemptsPerHour / (perMinute * 60) - 1) < 0.1, "\(plan.attemptsPerHour) an hour at \(perMinute) a minute")
            #expect(abs(try #require(plan.baselineRate) - 0.04) < 0.015)
            let minutes = try #require(plan.hoursToDetect) * 60
            predicted.append(minutes)
            #expect(reach.first { $0.scope == "plan:standard" }?.hoursToDetect == nil, "a plan without attempts has no reach")
            #expect(engine.detectionReach(outageRate: 0.03).first { $0.scope == "plan:premium" }?.hoursToDetect == nil,
                    "a rate under the baseline is no outage")
            var delays: [Double] = []
            for seed: UInt64 in 21...25 {
                let events = meteredAttempts(minutes: week + 24 * 60, perMinute: perMinute, seed: seed) { m in m >= week ? 0.40 : 0.04 }
                let fired = try #require(run(events, rules: rules).first { $0.state == .firing }, "seed \(seed) at \(perMinute)/min")
                delays.append(Double(fired.at.ms - start.ms) / 60_000 - Double(week))
            }
            let mean = delays.reduce(0, +) / Double(delays.count)
            #expect(mean >= minutes / 2 && mean <= 2 * minutes + 1, "measured \(delays) min, stated \(minutes) min at \(perMinute)/min")
        }
        #expect(predicted[0] > 5 * predicted[1], "ten times the volume, far sooner: \(predicted)")
    }

    /// The thresholds are calibrated to the false-alarm budget: the exact in-control run length of a Bernoulli CUSUM
    /// at the threshold the detector uses is close to the run length it was asked for. Over shifts of 40 and 200
    /// times baselines of 0.1-0.4% (the thin scopes' CUSUMs whose failures lift the statistic by 3.7-5.3 nats) and
    /// run lengths from 10⁴ to 3·10⁶ attempts, the median ratio is between 0.5 and 2 and none is below 0.4; with
    /// Siegmund's threshold alone (the overshoot ignored) the median is above 3: a fraction of the budget spent.
    @Test func theThresholdsRunAsLongAsTheBudgetAsksBetweenFalseAlarms() {
        var before: [Double] = [], after: [Double] = []
        for p0 in [0.001, 0.002, 0.004] {
            for shift in [40.0, 200.0] {
                let p1 = p0 * shift
                for arl0 in [1e4, 3e4, 1e5, 3e5, 1e6, 3e6] {
                    let plain = SequentialAlerting.threshold(arl0: arl0, kl01: SequentialAlerting.kl(p0, p1))
                    let calibrated = SequentialAlerting.threshold(arl0: arl0, p0: p0, p1: p1)
                    #expect(calibrated < plain && calibrated >= plain / 2)
                    before.append(Self.exactRunLength(p0: p0, p1: p1, h: plain) / arl0)
                    after.append(Self.exactRunLength(p0: p0, p1: p1, h: calibrated) / arl0)
                }
            }
        }
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        #expect(median(before) > 3, "ratios without the overshoot: \(before)")
        #expect(median(after) > 0.5 && median(after) < 2, "ratios: \(after)")
        #expect(after.min()! > 0.4, "ratios: \(after)")
    }

    /// The exact expected number of in-control attempts (failing with `p0`) until the CUSUM of `p0` against `p1`
    /// reaches `h` from zero, a plain reference computed without the detector. A failure lifts the statistic by
    /// a = ln(p₁/p₀), a success lowers it by b = ln((1−p₀)/(1−p₁)) down to zero. Seen at failures only, the
    /// statistic after a failure is a Markov chain: from x, g successes (probability (1−p₀)ᵍp₀) lead to
    /// max(0, x − g·b) + a. Its expected number of failures to reach h, M, solves a linear system on a grid of b/4
    /// (b exact on it, a rounded to it), and by Wald's identity the attempts are (1 + M(a))/p₀.
    static func exactRunLength(p0: Double, p1: Double, h: Double) -> Double {
        let cellsPerSuccess = 4
        let a = log(p1 / p0), b = log((1 - p0) / (1 - p1)), step = b / Double(cellsPerSuccess)
        let ia = Int((a / step).rounded()), top = Int((h / step).rounded(.up))
        guard ia < top else { return 1 / p0 }
        // Unknowns: M at grid values ia..<top (the values a failure can leave the statistic at below h).
        let n = top - ia
        var m = [Double](repeating: 0, count: n * n), rhs = [Double](repeating: 1, count: n)
        for row in 0..<n {
            m[row * n + row] += 1
            let x = ia + row
            var g = 0, weight = p0
            while x - cellsPerSuccess * g > 0 {
                let y = x - cellsPerSuccess * g + ia
                if y < top { m[row * n + (y - ia)] -= weight }
                g += 1
                weight *= 1 - p0
            }
            // Every longer run of successes takes the statistic to zero, and the next failure to a.
            m[row * n] -= pow(1 - p0, Double(g))
        }
        // Gaussian elimination without pivoting: I − P of a chain that can leave the grid is a nonsingular M-matrix.
        for k in 0..<n {
            let pivot = m[k * n + k]
            for r in (k + 1)..<n where m[r * n + k] != 0 {
                let f = m[r * n + k] / pivot
                for c in k..<n { m[r * n + c] -= f * m[k * n + c] }
                rhs[r] -= f * rhs[k]
            }
        }
        var solution = [Double](repeating: 0, count: n)
        for k in stride(from: n - 1, through: 0, by: -1) {
            var sum = rhs[k]
            for c in (k + 1)..<n { sum -= m[k * n + c] * solution[c] }
            solution[k] = sum / m[k * n + k]
        }
        return (1 + solution[0]) / p0
    }

    /// The reach said in words: nothing seen, too thin to watch, still learning, or how soon an outage is caught
    /// overall and in the slowest plan.
    @Test func theReachInOneSentence() {
        func reach(_ scope: String, _ perHour: Double, _ baseline: Double?, _ hours: Double?) -> DetectionReach {
            DetectionReach(scope: scope, attemptsPerHour: perHour, baselineRate: baseline, outageRate: 0.5, minimumAttemptsPerHour: 0.8,
                           hoursToDetect: hours)
        }
        #expect(DetectionReach.sentence([]).hasPrefix("no payment attempts seen yet"))
        #expect(DetectionReach.sentence([reach("overall", 0.6, nil, nil)])
                == "too few payments to watch: 0.6 first attempts an hour, where the detector needs 0.8 to learn a baseline failure rate, so no outage can be told from chance")
        #expect(DetectionReach.sentence([reach("overall", 3, nil, nil)]) == "still learning the baseline failure rate (3.0 first attempts an hour so far)")
        let s = DetectionReach.sentence([reach("overall", 1200, 0.08, 0.1), reach("plan:standard", 600, 0.07, 0.25),
                                         reach("plan:premium", 40, 0.09, 2.54), reach("plan:premium/reason:expired_card", 40, 0.01, 30)])
        #expect(s == "an outage failing 50% of all first attempts would be caught in about 6 min (1200 first attempts an hour); "
                + "one failing 50% of a single plan's, in up to 2.5 h (plan:premium, 40 an hour)")
        #expect(DetectionReach.duration(100) == "4 days")
    }

    /// The engine's state taken at any of several points and restored gives, with the rest of the stream, the
    /// alerts of an uninterrupted run (through the alert engine's checkpoint encoding).
    @Test func aRestoredDetectorRaisesTheUninterruptedAlerts() throws {
        let week = 7 * 24 * 60
        let events = meteredAttempts(minutes: week + 24 * 60, perMinute: 3, seed: 8) { m in (week..<(week + 180)).contains(m) ? 0.5 : 0.04 }
        let whole = run(events, rules: Self.rules)
        #expect(whole.contains { $0.state == .firing } && whole.contains { $0.state == .resolved })
        for cut in stride(from: events.count / 10, to: events.count, by: events.count / 7) {
            var first = AlertEngine(rules: Self.rules)
            var alerts: [Alert] = []
            for e in events[..<cut] { alerts += first.observe(e, source: 0) }
            let state = first.state
            #expect(!state.sequential.isEmpty)
            var second = AlertEngine(rules: Self.rules, state: state)
            for e in events[cut...] { alerts += second.observe(e, source: 0) }
            alerts += second.advance(to: .max)
            #expect(alerts == whole, "restored at event \(cut)")
        }
    }

    /// Hostile values in the sequential section: rejected at load, with a message naming the key.
    @Test func hostileValuesAreRejectedNamingTheKey() throws {
        let cases: [(String, String)] = [
            ("falseAlertsPerMonth: -1", "falseAlertsPerMonth"), ("falseAlertsPerMonth: .nan", "falseAlertsPerMonth"),
            ("falseAlertsPerMonth: 0", "falseAlertsPerMonth"), ("shifts: [0.5]", "shifts"), ("shifts: []", "shifts"),
            ("shifts: [2, .inf]", "shifts"), ("scopes: []", "scopes"), ("scopes: [overall, overall]", "scopes"),
            ("scopes: [galaxy]", "scopes"), ("minIncrease: 2", "minIncrease"), ("baselineHalfLifeDays: 0", "baselineHalfLifeDays"),
            ("priorFailureRate: 1.5", "priorFailureRate"), ("priorAttempts: -4", "priorAttempts"),
            ("minBaselineAttempts: -1", "minBaselineAttempts"), ("resolveEvidence: 0", "resolveEvidence"),
            ("chanceResolutionDays: 0", "chanceResolutionDays"), ("chanceResolutionDays: .inf", "chanceResolutionDays"),
            ("attempts: some", "attempts"), ("falseAlertsPerMonth: lots", "falseAlertsPerMonth"),
            ("resolveWithWiderScope: sometimes", "resolveWithWiderScope"), ("resolveWithNarrowerScope: 2", "resolveWithNarrowerScope"),
        ]
        let dir = tempDir()
        for (line, key) in cases {
            let file = dir.appendingPathComponent("alerts.yaml")
            try "evaluateEverySeconds: 60\nsequential:\n  \(line)\n".write(to: file, atomically: true, encoding: .utf8)
            do {
                _ = try AlertConfig.load(file: file.path, configDir: nil)
                Issue.record("'\(line)' was accepted")
            } catch {
                #expect("\(error)".contains(key), "'\(line)': \(error)")
            }
        }
        let empty = dir.appendingPathComponent("empty.yaml")
        try "evaluateEverySeconds: 60\n".write(to: empty, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { _ = try AlertConfig.load(file: empty.path, configDir: nil) }
        // The shipped file loads.
        let shipped = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        #expect(shipped.sequential != nil && shipped.rules.isEmpty)
    }
}

@Suite struct SequentialDetectorOrderTests {
    /// Four partitions read in interleaved batches of varying sizes (each partition in order, within the allowed
    /// lateness of each other) give exactly the alerts of reading the stream in time order.
    @Test(arguments: [1, 7, 50, 400])
    func anyInterleavingOfPartitionsGivesTheSameAlerts(batch: Int) {
        let week = 3 * 24 * 60
        let events = meteredAttempts(minutes: week + 6 * 60, perMinute: 4, seed: 12) { m in (week..<(week + 90)).contains(m) ? 0.5 : 0.04 }
        let rules = SequentialDetectorTests.rules
        func source(_ e: Event) -> Int { Int(e.customerID.utf8.reduce(0) { ($0 &* 31 &+ Int($1)) & 0xffff }) % 4 }
        var ordered = AlertEngine(rules: rules)
        for s in 0..<4 { ordered.hold(source: s) }
        var expected: [Alert] = []
        for e in events { expected += ordered.observe(e, source: source(e)) }
        var partitions: [[Event]] = [[], [], [], []]
        for e in events { partitions[source(e)].append(e) }
        var engine = AlertEngine(rules: rules)
        for s in 0..<4 { engine.hold(source: s) }
        var got: [Alert] = []
        var cursors = [0, 0, 0, 0]
        var turn = 0
        while (0..<4).contains(where: { cursors[$0] < partitions[$0].count }) {
            let p = turn % 4
            // Keep partitions within a minute of each other (as the allowed lateness requires).
            let horizon = (0..<4).compactMap { cursors[$0] < partitions[$0].count ? partitions[$0][cursors[$0]].occurredAt.ms : nil }.min()! + 60_000
            var taken = 0
            while taken < batch, cursors[p] < partitions[p].count, partitions[p][cursors[p]].occurredAt.ms <= horizon {
                got += engine.observe(partitions[p][cursors[p]], source: p)
                cursors[p] += 1
                taken += 1
            }
            turn += 1
        }
        #expect(got == expected)
        #expect(expected.contains { $0.state == .firing })
    }
}

@Suite struct AlertEngineStartTests {
    /// Which partition's first batch arrives first is timing: a later-starting one that comes first must not make
    /// the other's earlier attempts late.
    @Test func theFirstSourceToDeliverDoesNotSetTheStartOfEventTime() {
        let events = meteredAttempts(minutes: 60, perMinute: 2, seed: 3) { _ in 0.04 }
        var engine = AlertEngine(rules: SequentialDetectorTests.rules)
        engine.hold(source: 0)
        engine.hold(source: 1)
        let (early, late) = (events.filter { $0.occurredAt.ms < events[0].occurredAt.ms + 30 * 60_000 }, events.filter { $0.occurredAt.ms >= events[0].occurredAt.ms + 30 * 60_000 })
        for e in late.prefix(5) { _ = engine.observe(e, source: 1) }
        for e in early { _ = engine.observe(e, source: 0) }
        #expect(engine.lateAttempts == 0)
    }
}

