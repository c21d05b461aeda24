import Events
import Foundation
import Marts
import Simulation
import Testing
import TestSupport
import Config



/// Splits events by customer into `n` partitions, as the co-partitioned topics do.
func partitioned(_ events: [Event], _ n: Int) -> [[Event]] {
    var parts = Array(repeating: [Event](), count: n)
    for e in events { parts[Int(EventFingerprint(e.customerID).a % UInt64(n))].append(e) }
    return parts
}


@Suite struct MartEngineTests {
    @Test func historyExercisesEveryMart() {
        let tables = export([martState(history)])
        for t in tables { #expect(!t.rows.isEmpty, "\(t.name) is empty") }
        let mrr = tables.first { $0.name == "mart_mrr_movements" }!
        let react = mrr.column("reactivation_mrr_cents")!
        #expect(mrr.rows.contains { $0[react] != .int(0) }, "no reactivation in the test history")
        let rec = tables.first { $0.name == "mart_recovery_opportunity" }!
        #expect(rec.rows.contains { $0[rec.column("lost_invoices")!] != .int(0) })
    }

    @Test func incrementalMartsEqualTheBatchReference() {
        let snap = MartSnapshot([martState(history)])
        let ref = ReferenceMarts(history)
        #expect(snap.revenueMonthly().rows == ref.revenue)
        #expect(snap.reliability().rows == ref.reliability)
        #expect(snap.reliabilityByPlan().rows == ref.reliabilityByPlan)
        #expect(snap.failureReasons().rows == ref.failureReasons)
        #expect(snap.engagement().rows == ref.engagement)
        #expect(snap.mrrMovements().rows == ref.mrr)
        #expect(snap.customer360().rows.map { Array($0.prefix(19)) } == ref.customer360)
        #expect(snap.failureToChurn().rows == ref.failureToChurn)
        #expect(snap.activationCohorts().rows == ref.activation)
        #expect(snap.recoveryOpportunity().rows == ref.recovery)
    }

    @Test(arguments: [1, 2, 3])
    func shuffledInputGivesIdenticalExports(_ seed: UInt64) {
        var rng = Xoshiro(seed: seed)
        let shuffled = history.shuffled(using: &rng)
        #expect(export([martState(shuffled)]) == export([martState(history)]))
    }

    @Test func duplicatedInputGivesIdenticalMartsAndCountsDuplicates() {
        var rng = Xoshiro(seed: 5)
        let dups = history.filter { _ in rng.chance(0.3) }
        let input = (history + dups).shuffled(using: &rng)
        let state = martState(input)
        #expect(state.duplicates == dups.count)
        #expect(state.accepted == history.count)
        #expect(export([state]) == export([martState(history)]))
    }

    @Test(arguments: [2, 5])
    func partitionSplitInputGivesIdenticalExports(_ n: Int) {
        let states = partitioned(history, n).map(martState)
        #expect(export(states) == export([martState(history)]))
    }

    @Test func lateEventsCorrectEarlierMonthsAndAttributions() {
        // Hold back every cancellation and first failed attempt, deliver them at the very end.
        let late = history.filter { e in
            switch e.payload {
            case .subscriptionCanceled: true
            case let .paymentFailed(_, _, _, _, _, attempt, _, _): attempt == 1
            default: false
            }
        }
        let lateIDs = Set(late.map(\.eventID))
        let onTime = history.filter { !lateIDs.contains($0.eventID) }
        #expect(!late.isEmpty)
        #expect(export([martState(onTime + late)]) == export([martState(history)]))
    }

    @Test func conflictingDuplicateIsRejectedAndChangesNothing() {
        var s = martState(history)
        let before = export([s])
        var e = history.first { if case .paymentSucceeded = $0.payload { true } else { false } }!
        if case let .paymentSucceeded(p, i, plan, _, c, a) = e.payload {
            e.payload = .paymentSucceeded(paymentID: p, invoiceID: i, plan: plan, amountCents: 1, currency: c, attempt: a)
        }
        let outcome = s.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e)))
        guard case let .rejected(r) = outcome else { Issue.record("accepted a conflicting duplicate"); return }
        #expect(r.code == .conflictingDuplicate)
        #expect(export([s]) == before)
    }

    @Test func untilGivesTheMartsOfThatDay() {
        let cut = Timestamp(year: 2024, month: 9, day: 15)
        var s = MartState()
        var after = 0
        for e in history {
            let (outcome, _) = s.ingest(value: EventEncoder.encode(e)[...], topic: e.topic, key: nil, until: cut)
            if outcome == .afterLimit { after += 1 }
        }
        #expect(after > 0)
        #expect(export([s]) == export([martState(history.filter { $0.occurredAt <= cut })]))
    }

    @Test func exportFormatsFollowMartsMd() {
        let table = MartSnapshot([martState(history)]).reliability()
        let csv = table.csv.split(separator: "\n")
        #expect(csv[0] == "month,attempts,succeeded,failed,failure_rate,first_attempts,first_attempt_failures,first_attempt_failure_rate,retries,retry_successes,invoices_attempted,avg_attempts_per_invoice")
        let fields = csv[1].split(separator: ",", omittingEmptySubsequences: false)
        #expect(fields[0].count == 7)
        // Rates have exactly 6 digits after the point, or are empty (null).
        for i in [4, 7, 11] { #expect(fields[i].isEmpty || fields[i].split(separator: ".").last?.count == 6) }
    }
}
