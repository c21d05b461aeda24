import Events
import Marts
import Simulation
import Testing
import TestSupport

func run(_ events: [Event], sources: Int = 1, rules: AlertRules = testRules) -> [Alert] {
    var engine = AlertEngine(rules: rules)
    var out: [Alert] = []
    for (i, e) in events.enumerated() { out += engine.observe(e, source: i % sources) }
    return out + engine.advance(to: .max)
}

@Suite struct AlertEngineTests {
    static let spikeStart = 2 * 24 * 60  // after two days of normal traffic
    static let stream = attempts(minutes: spikeStart + 6 * 60, perMinute: 6) { m in
        (spikeStart..<(spikeStart + 60)).contains(m) ? 0.5 : 0.05
    }

    @Test func aSpikeFiresOnceAndResolvesOnce() {
        let alerts = run(Self.stream)
        #expect(alerts.map(\.state) == [.firing, .resolved], "\(alerts.map { "\($0.state) \($0.at)" })")
        let start = Self.stream[0].occurredAt.adding(ms: Int64(Self.spikeStart) * 60_000)
        let fired = alerts[0]
        #expect(fired.at >= start && fired.at.ms - start.ms <= 10 * 60_000, "fired at \(fired.at), spike at \(start)")
        #expect(fired.observedRate > 0.2 && fired.baselineRate < 0.1)
        #expect(alerts[1].at.ms > start.ms + 60 * 60_000)  // resolves only after the spike ends
        #expect(alerts[1].firingSince == fired.at)
    }

    @Test func noAlertBelowTheMinimumVolume() {
        // One attempt a minute: even when all fail for 20 minutes, a 10-minute window holds 10 < 30 attempts.
        let quiet = attempts(minutes: 2 * 24 * 60 + 120, perMinute: 1) { m in m >= 2 * 24 * 60 && m < 2 * 24 * 60 + 20 ? 1 : 0.05 }
        #expect(run(quiet).isEmpty)
    }

    @Test func noAlertWithoutASpike() {
        let normal = attempts(minutes: 3 * 24 * 60, perMinute: 6, seed: 3) { _ in 0.05 }
        #expect(run(normal).isEmpty)
    }

    @Test func liveAndBackfillOrderGiveTheSameAlerts() {
        // "Live": in time order from one source. "Backfill": three partitions read in interleaved batches,
        // each partition in order, partitions up to a minute apart (within the allowed lateness).
        let live = run(Self.stream)
        var partitions: [[Event]] = [[], [], []]
        for (i, e) in Self.stream.enumerated() { partitions[i % 3].append(e) }
        var interleaved: [(Event, Int)] = []
        var cursors = [0, 0, 0]
        var turn = 0
        while cursors.enumerated().contains(where: { $0.element < partitions[$0.offset].count }) {
            let p = turn % 3
            let batch = partitions[p][cursors[p]..<min(cursors[p] + 4, partitions[p].count)]
            interleaved += batch.map { ($0, p) }
            cursors[p] += batch.count
            turn += 1
        }
        var engine = AlertEngine(rules: testRules)
        var backfill: [Alert] = []
        for (e, p) in interleaved { backfill += engine.observe(e, source: p) }
        backfill += engine.advance(to: .max)
        #expect(live == backfill)
        #expect(!live.isEmpty)
    }

    @Test func rulesAreValidated() {
        var bad = testRules
        bad.rules[0].shortWindowMinutes = 24 * 60 * 2
        #expect(throws: ConfigProblem.self) { try bad.validate() }
        #expect(throws: Never.self) { try testRules.validate() }
    }
}

@Suite struct AlertEngineSourceTests {
    /// Event time waits for a source that is expected but silent, and moves on once it is forgotten.
    @Test func aHeldSourceKeepsEventTimeStillUntilItSpeaksOrIsForgotten() {
        let events = attempts(minutes: 3 * 60, perMinute: 8, seed: 9) { m in (120..<150).contains(m) ? 0.6 : 0.03 }
        var engine = AlertEngine(rules: testRules)
        engine.hold(source: 1)
        var raised: [Alert] = []
        for e in events { raised += engine.observe(e, source: 0) }
        #expect(raised.isEmpty, "nothing is evaluated while source 1 is silent")
        #expect(engine.heldSources == [1])
        let wasHeld = engine.forget(source: 1)
        #expect(wasHeld)
        raised += engine.advance(to: .max)
        #expect(raised == run(events, sources: 1), "once forgotten, the same alerts as a single-source run")

        var speaking = AlertEngine(rules: testRules)
        speaking.hold(source: 1)
        _ = speaking.observe(events[0], source: 1)
        #expect(speaking.heldSources.isEmpty)
        let spokeHeld = speaking.forget(source: 1)
        #expect(!spokeHeld, "a source that spoke was not held")
    }
}
