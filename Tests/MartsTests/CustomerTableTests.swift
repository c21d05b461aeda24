import Checkpoints
import Events
import Foundation
import Marts
import Simulation
import Testing
import TestSupport

/// Feeds events the way the consumer does (apply, then the customer's and time's risk changes).
func consume(_ events: [Event], hotCustomers: Int) -> (MartState, [RiskChange]) {
    var s = MartState()
    s.hotCustomerCapacity = hotCustomers
    var changes: [RiskChange] = []
    for e in events where s.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) == .accepted {
        if let c = s.riskChange(of: e.customerID) { changes.append(c) }
        changes += s.timeDrivenRiskChanges()
    }
    return (s, changes)
}

@Suite struct CustomerTableTests {
    /// With room for only a few unpacked customers, nearly every event packs one customer and unpacks
    /// another: the marts, the customers and the risk announcements are those of a table that never packs.
    @Test(arguments: [1, 3, 40])
    func packingCustomersChangesNothing(_ hot: Int) {
        let (small, smallChanges) = consume(history, hotCustomers: hot)
        let (large, largeChanges) = consume(history, hotCustomers: 100_000)
        #expect(small.customers.count > 100 && small.customers.hotCount <= hot)
        #expect(large.customers.hotCount == large.customers.count)
        #expect(small.customers == large.customers)
        #expect(small.aggregates == large.aggregates)
        #expect(export([small]) == export([large]))
        #expect(!largeChanges.isEmpty && smallChanges == largeChanges)
    }

    @Test func checkpointsOfAMostlyPackedStateRestoreItExactly() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = CheckpointStore(stateDirectory: dir, partition: 1)
        store.compactAfterBytes = 100_000
        var state = MartState()
        state.hotCustomerCapacity = 5
        for (i, e) in history.enumerated() {
            _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e)))
            if i % 499 == 0 { try store.write(&state, offsets: ["billing": Int64(i + 1)]) }
        }
        try store.write(&state, offsets: ["billing": Int64(history.count)])
        try store.finishCompaction()
        let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 1).load())
        #expect(loaded.state.customers.hotCount == 0)
        #expect(loaded.state.customers == state.customers)
        #expect(export([loaded.state]) == export([martState(history)]))
    }

    @Test func changedCustomersAreHandedOverOnceWithTheirLatestState() {
        var state = MartState()
        state.hotCustomerCapacity = 2
        let events = history.prefix(3000)
        for e in events { _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        let changed = state.takeChanges().customers
        #expect(Set(changed.map(\.0)) == Set(events.map(\.customerID)))
        #expect(changed.count == Set(events.map(\.customerID)).count)
        for (id, packed) in changed { #expect(CustomerCodec.decode(packed) == state.customers[id]) }
        #expect(state.takeChanges().customers.isEmpty)
        _ = state.apply(history[3000], valueHash: 1)
        #expect(state.takeChanges().customers.map(\.0) == [history[3000].customerID])
    }

    @Test func thePackedFormRoundTripsAndDamageIsCaught() throws {
        let state = martState(history)
        for (_, c) in state.customers {
            let bytes = CustomerCodec.encode(c)
            try CustomerCodec.validate(bytes[...])
            #expect(CustomerCodec.decode(bytes) == c)
            #expect(throws: (any Error).self) { try CustomerCodec.validate(bytes.dropLast()) }
            #expect(throws: (any Error).self) { try CustomerCodec.validate((bytes + [0])[...]) }
        }
    }

    /// What the loader's check (a walk that builds nothing) accepts always decodes: damaged bytes that pass
    /// it can never stop the consumer later, when the customer is next used.
    @Test func whatTheCheckAcceptsAlwaysDecodes() {
        var rng = Xoshiro(seed: 7)
        var accepted = 0
        for (_, c) in martState(Array(history.prefix(20_000))).customers {
            let bytes = CustomerCodec.encode(c)
            for _ in 0..<20 {
                var damaged = bytes
                if rng.next() % 3 == 0 {
                    damaged.removeLast(Int(rng.next() % UInt64(damaged.count)) + 1)
                } else {
                    damaged[Int(rng.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                guard (try? CustomerCodec.validate(damaged[...])) != nil else { continue }
                accepted += 1
                var r = BinaryReader(damaged)
                #expect((try? r.customer()) != nil && r.atEnd)
            }
        }
        #expect(accepted > 0)  // some changes (a time, an amount) leave a well-formed customer
    }
}

