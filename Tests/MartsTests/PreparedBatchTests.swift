import Events
import Marts
import Simulation
import Testing
import TestSupport

/// `prepare`, `warm` and `commit` in batches must give, message by message, exactly what `ingest` gives.
@Suite struct PreparedBatchTests {
    /// The history's messages with duplicates, conflicting re-sends, bad values and missing keys mixed in, shuffled.
    static func messages() -> [(value: [UInt8], topic: InputTopic, key: [UInt8]?)] {
        var rng = Xoshiro(seed: 29)
        var out: [(value: [UInt8], topic: InputTopic, key: [UInt8]?)] = []
        for e in history {
            let value = EventEncoder.encode(e), key = Array(e.customerID.utf8)
            out.append((value, e.topic, key))
            switch rng.int(0...19) {
            case 0: out.append((value, e.topic, key))  // duplicate
            case 1:  // the same id with another value: a conflict (or, when the original comes later, the original is)
                var changed = e
                changed.occurredAt = e.occurredAt.adding(ms: 1)
                out.append((EventEncoder.encode(changed), e.topic, key))
            case 2: out.append((Array(value.dropLast()), e.topic, key))  // truncated JSON
            case 3: out.append((value, e.topic, nil))  // no Kafka key
            default: break
            }
        }
        out.shuffle(using: &rng)
        return out
    }

    @Test(arguments: [1, 7, 32, 100])
    func batchesGiveWhatIngestGives(_ batchSize: Int) {
        let messages = Self.messages()
        let until = Timestamp(year: 2024, month: 12, day: 1)
        var one = MartState(), batched = MartState()
        var outcomes: [MartState.Outcome] = []
        var events: [Event?] = []
        for m in messages {
            let (o, e) = one.ingest(value: m.value[...], topic: m.topic, key: m.key?[...], until: until, requireKey: true)
            outcomes.append(o)
            events.append(e)
        }
        var i = 0
        while i < messages.count {
            let slice = messages[i..<min(i + batchSize, messages.count)]
            var prepared = slice.map { MartState.prepare(value: $0.value[...], topic: $0.topic, key: $0.key?[...], until: until, requireKey: true) }
            batched.warm(prepared.span)
            for (j, p) in prepared.enumerated() {
                let o = batched.commit(p)
                #expect(o == outcomes[i + j])
                #expect(p.event(after: o) == events[i + j])
            }
            prepared.removeAll()
            i = slice.endIndex
        }
        #expect(batched.counters == one.counters)
        #expect(batched.seen == one.seen)
        #expect(export([batched]) == export([one]))
        // Every kind of outcome was exercised.
        #expect(Set(outcomes.map { "\($0)".prefix(8) }).count >= 4)
        #expect(one.duplicates > 0 && one.rejected > 0)
    }

    @Test func warmingChangesNothing() {
        let messages = Self.messages().prefix(2000)
        var warmed = MartState(), cold = MartState()
        let prepared = messages.map { MartState.prepare(value: $0.value[...], topic: $0.topic, key: $0.key?[...]) }
        for _ in 0..<3 { warmed.warm(prepared.span) }  // warming before anything is stored, and repeatedly
        for p in prepared {
            warmed.warm(prepared.span.extracting(0..<1))
            #expect(warmed.commit(p) == cold.commit(p))
        }
        #expect(warmed.seen == cold.seen && warmed.counters == cold.counters)
        #expect(export([warmed]) == export([cold]))
    }
}
