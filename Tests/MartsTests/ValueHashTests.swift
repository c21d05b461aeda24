import Marts
import Testing

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
