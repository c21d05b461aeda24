import Checkpoints
import Events
import Foundation
import Marts
import Testing
import TestSupport


@Suite struct CheckpointTests {
    @Test func deltasAndSnapshotsRestoreTheExactState() throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 3)
        store.compactAfterBytes = 200_000  // force several compactions
        var state = MartState()
        var offset: Int64 = 0
        for (i, e) in history.enumerated() {
            _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e)))
            offset += 1
            if i % 997 == 0 { try store.write(&state, offsets: ["billing": offset]) }
        }
        try store.write(&state, offsets: ["billing": offset])
        let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 3).load())
        #expect(loaded.offsets == ["billing": offset])
        #expect(loaded.state.customers == state.customers)
        #expect(loaded.state.aggregates == state.aggregates)
        #expect(loaded.state.counters == state.counters)
        #expect(loaded.state.seen == state.seen)
        #expect(export([loaded.state]) == export([state]))
    }

    /// Compactions run in the background while deltas keep coming; a reader that loads after any checkpoint
    /// (as a restart after a crash there would) sees exactly the state checkpointed last.
    @Test func backgroundCompactionsNeverLoseOrRepeatACheckpoint() throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 4)
        store.compactAfterBytes = 50_000
        var state = MartState()
        var offset: Int64 = 0
        var compactionsSeen = 0
        for (i, e) in history.prefix(12_000).enumerated() {
            _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e)))
            offset += 1
            guard i % 499 == 0 else { continue }
            try store.write(&state, offsets: ["billing": offset])
            if store.isCompacting { compactionsSeen += 1 }
            let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 4).load())
            #expect(loaded.offsets == ["billing": offset])
            #expect(loaded.state.counters == state.counters)
            #expect(loaded.state.customers == state.customers)
        }
        try store.write(&state, offsets: ["billing": offset])
        try store.finishCompaction()
        #expect(compactionsSeen > 0)
        let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 4).load())
        #expect(export([loaded.state]) == export([state]))
        #expect(loaded.state.seen == state.seen)
    }

    @Test func aMissingLogRecordIsReportedNotSkipped() throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 6)
        var state = MartState()
        var ends: [Int] = []
        let log = dir.appendingPathComponent("partition-6/log.bin")
        for (i, chunk) in stride(from: 0, to: 900, by: 300).enumerated() {
            for e in history[chunk..<(chunk + 300)] { _ = state.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
            try store.write(&state, offsets: ["billing": Int64(i)])
            ends.append(try Data(contentsOf: log).count)
        }
        // Cut the middle record out: records 1 and 3 remain, each intact.
        let bytes = try Data(contentsOf: log)
        try (bytes[0..<ends[0]] + bytes[ends[1]...]).write(to: log)
        #expect { _ = try CheckpointStore(stateDirectory: dir, partition: 6).load() } throws: { error in
            "\(error)".contains("missing")
        }
    }

    @Test func crc32IsTheStandardOneAtEveryLengthAndAlignment() {
        #expect(CRC32.of(Array("123456789".utf8)) == 0xCBF4_3926)  // the published check value
        func bytewise(_ b: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for x in b {
                crc ^= UInt32(x)
                for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return crc ^ 0xFFFF_FFFF
        }
        var rng = SystemRandomNumberGenerator()
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for start in 0..<9 {
            for end in stride(from: start, through: data.count, by: 7) {
                #expect(CRC32.of(data[start..<end]) == bytewise(data[start..<end]))
            }
        }
    }

    @Test func aSnapshotAloneRestoresTheState() throws {
        let dir = tempDir()
        var state = martState(Array(history.prefix(2000)))
        _ = state.takeChanges()
        try CheckpointStore(stateDirectory: dir, partition: 5).compact(state, offsets: ["engagement": 2000])
        let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 5).load())
        #expect(loaded.offsets == ["engagement": 2000])
        #expect(export([loaded.state]) == export([state]))
    }

    @Test func aTornLastRecordIsDroppedAndTheStateBeforeItLoads() throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 0)
        var state = MartState()
        let half = history.count / 2
        for e in history[..<half] { _ = state.apply(e, valueHash: 1) }
        try store.write(&state, offsets: ["payments": 10])
        let before = state.customers
        for e in history[half...] { _ = state.apply(e, valueHash: 1) }
        try store.write(&state, offsets: ["payments": 20])
        let log = dir.appendingPathComponent("partition-0/log.bin")
        let data = try Data(contentsOf: log)
        try data.prefix(data.count - 7).write(to: log)  // a crash in the middle of the second write
        // A reader (export, dashboard) skips the torn record and leaves the file alone: the owner may be
        // writing it right now.
        let read = try #require(try CheckpointStore(stateDirectory: dir, partition: 0).load())
        #expect(read.offsets == ["payments": 10] && read.state.customers == before && read.notes.isEmpty)
        #expect(try Data(contentsOf: log).count == data.count - 7)
        // The owner cuts it off and says so.
        let loaded = try #require(try CheckpointStore(stateDirectory: dir, partition: 0).load(repair: true))
        #expect(loaded.offsets == ["payments": 10])
        #expect(loaded.state.customers == before)
        #expect(loaded.notes.count == 1)
        #expect(try Data(contentsOf: log).count < data.count - 7)
    }

    @Test func flippedBytesAreReportedAsCorruption() throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 1)
        var state = MartState()
        for e in history.prefix(500) { _ = state.apply(e, valueHash: 1) }
        try store.write(&state, offsets: ["billing": 1])
        for e in history.dropFirst(500).prefix(500) { _ = state.apply(e, valueHash: 1) }
        try store.write(&state, offsets: ["billing": 2])
        let log = dir.appendingPathComponent("partition-1/log.bin")
        var bytes = [UInt8](try Data(contentsOf: log))
        bytes[100] ^= 0xFF  // inside the first record, with a valid record after it
        try Data(bytes).write(to: log)
        #expect(throws: CheckpointError.self) { _ = try CheckpointStore(stateDirectory: dir, partition: 1).load() }
    }

    @Test(arguments: [(UInt8(99), "newer format version"), (UInt8(1), "older, incompatible format version"),
                     (UInt8(2), "older, incompatible format version")])
    func anotherFormatVersionIsRefused(_ version: UInt8, _ message: String) throws {
        let dir = tempDir()
        let store = CheckpointStore(stateDirectory: dir, partition: 2)
        var state = MartState()
        for e in history.prefix(100) { _ = state.apply(e, valueHash: 1) }
        try store.write(&state, offsets: [:])
        let log = dir.appendingPathComponent("partition-2/log.bin")
        var bytes = [UInt8](try Data(contentsOf: log))
        bytes[4] = version  // format version, little endian
        try Data(bytes).write(to: log)
        let error = #expect(throws: CheckpointError.self) { _ = try CheckpointStore(stateDirectory: dir, partition: 2).load() }
        #expect(error?.problem.contains(message) == true)
    }
}

@Suite struct AlertStateStoreTests {
    @Test func theEngineRestoredFromItsCheckpointRaisesWhatAnUninterruptedOneRaises() throws {
        let events = attempts(minutes: 3 * 60, perMinute: 8, seed: 5) { m in (120..<150).contains(m) ? 0.6 : 0.03 }
        var whole = AlertEngine(rules: testRules)
        var expected: [Alert] = []
        for (i, e) in events.enumerated() { expected += whole.observe(e, source: i % 3) }
        #expect(expected.contains { $0.state == .firing })

        // Stop half-way into the spike, checkpoint, restore into a new engine, go on.
        let cut = events.firstIndex { $0.occurredAt >= events[0].occurredAt.adding(ms: 135 * 60_000) }!
        var first = AlertEngine(rules: testRules)
        var got: [Alert] = []
        for (i, e) in events[..<cut].enumerated() { got += first.observe(e, source: i % 3) }
        let store = AlertStateStore(stateDirectory: tempDir())
        try store.write(first.state, rules: "rules-v1", offsets: ["payments": [0: Int64(cut)]])
        let loaded = try #require(try store.load(rules: "rules-v1"))
        #expect(loaded.state == first.state)
        #expect(loaded.offsets == ["payments": [0: Int64(cut)]])
        var second = AlertEngine(rules: testRules, state: loaded.state)
        for (i, e) in events[cut...].enumerated() { got += second.observe(e, source: (cut + i) % 3) }
        #expect(got == expected)

        // Other rules: not used; a reader that takes any rules learns which they were. Damage or a newer format: reported.
        #expect(try store.load(rules: "rules-v2") == nil)
        #expect(try store.load(rules: nil)?.rules == "rules-v1")
        var bytes = try Data(contentsOf: store.url)
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: store.url)
        #expect(throws: CheckpointError.self) { try store.load(rules: "rules-v1") }
        bytes[4] = 9
        try bytes.write(to: store.url)
        #expect(throws: CheckpointError.self) { try store.load(rules: "rules-v1") }
    }
}
