@testable import Marts
import Testing

@Suite struct CellMapTests {
    /// Random additions, assignments and reads agree with a `Dictionary` doing the same, through growth of
    /// the index; equality ignores the order keys were added in.
    @Test func behavesLikeADictionary() {
        var rng = SplitMix(seed: 5)
        var map = CellMap()
        var model: [CellKey: Cell] = [:]
        for step in 0..<20_000 {
            let key = CellKey(Int32(rng.next() % 300) - 20, Int32(rng.next() % 12))
            let v = Int64(rng.next() % 1000) - 500
            switch rng.next() % 3 {
            case 0:
                let add = unit(Int(rng.next() % 8), v)
                map[key, default: .zero] &+= add
                model[key, default: .zero] &+= add
            case 1:
                map[key] = Cell(repeating: v)
                model[key] = Cell(repeating: v)
            default:
                #expect(map[key] == model[key])
            }
            if step % 1000 == 0 { #expect(map.count == model.count) }
        }
        #expect(map.count == model.count)
        for (k, v) in map { #expect(model[k] == v) }
        #expect(Set(map.keys) == Set(model.keys))
        var reversed = CellMap()
        for (k, v) in map.reversed() { reversed[k] = v }
        #expect(reversed == map)
        reversed[map.keys[0], default: .zero] &+= unit(0)
        #expect(reversed != map)
    }
}

private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
