import Marts
import Testing
import TestSupport

@Suite struct ValueHashTests {
    /// Every length from 0 to 80 (whole blocks, tails of every size, overlapping last blocks), and one byte
    /// changed at every position: no two of these values share a hash, and neither do their low 32 bits,
    /// which are what a duplicate-detection slot keeps.
    @Test func oneChangedByteAtAnyPositionChangesTheHash() {
        var hashes: [UInt64: [UInt8]] = [:]
        var low: Set<UInt32> = []
        func add(_ v: [UInt8]) {
            let h = ValueHash.of(v)
            if let other = hashes[h] { Issue.record("\(v) and \(other) share hash \(h)") }
            hashes[h] = v
            #expect(low.insert(UInt32(truncatingIfNeeded: h)).inserted, "low 32 bits repeat for \(v)")
        }
        for n in 0...80 {
            let base = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            add(base)
            for i in 0..<n {
                var v = base
                v[i] ^= 0x01
                add(v)
            }
        }
        #expect(hashes.count == 81 + (0...80).reduce(0, +))
    }

    /// The hash depends on the bytes, not on where a slice of them starts.
    @Test func aSliceHashesLikeTheSameBytesInTheirOwnArray() {
        let bytes = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 91) }
        for start in [0, 1, 7, 8, 13] {
            for end in [start, start + 5, start + 16, start + 33, 200] {
                #expect(ValueHash.of(bytes[start..<end]) == ValueHash.of(Array(bytes[start..<end])))
            }
        }
    }
}

@Suite struct EventFingerprintTests {
    /// Ids of every length to 130 (events.md allows 128 bytes), each with one character changed at every
    /// position, and a million ids shaped like the simulator's: no two share either half of a fingerprint.
    /// Among the 8,645 ids of the first kind, none share the 32 bits of `b` that a duplicate-detection slot
    /// keeps either (a million would, by the birthday bound).
    @Test func distinctIdsGetDistinctFingerprints() {
        var seenA: Set<UInt64> = [], seenB: Set<UInt64> = [], seenB32: Set<UInt32> = []
        var count = 0
        func add(_ id: String, high: Bool = false) {
            let f = EventFingerprint(id)
            #expect(seenA.insert(f.a).inserted, "a repeats for \(id)")
            #expect(seenB.insert(f.b).inserted, "b repeats for \(id)")
            if high { #expect(seenB32.insert(UInt32(truncatingIfNeeded: f.b >> 32)).inserted, "b's high half repeats for \(id)") }
            count += 1
        }
        let alphabet = Array("abcXYZ019_-.:".utf8)
        for n in 1...130 {
            let base = (0..<n).map { alphabet[($0 * 7 + n) % alphabet.count] }
            add(String(decoding: base, as: UTF8.self), high: true)
            for i in 0..<n {
                var v = base
                v[i] = v[i] == 0x61 ? 0x62 : 0x61
                add(String(decoding: v, as: UTF8.self), high: true)
            }
        }
        for c in 0..<10_000 {
            for k in 0..<100 { add("cus_\(String(repeating: "0", count: c < 10 ? 5 : c < 100 ? 4 : c < 1000 ? 3 : 2))\(c):\(k)") }
        }
        #expect(count == 130 + (1...130).reduce(0, +) + 1_000_000)
        // A fingerprint depends on the id alone.
        #expect(EventFingerprint("cus_000042:17") == EventFingerprint(String("xcus_000042:17".dropFirst())))
    }
}
