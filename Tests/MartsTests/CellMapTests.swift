@testable import Marts
import Simulation
import Testing
import TestSupport

@Suite struct CellMapTests {
    /// Random additions, assignments and reads agree with a `Dictionary` doing the same, through growth of
    /// the index; equality ignores the order keys were added in.
    @Test func behavesLikeADictionary() {
        var rng = Xoshiro(seed: 5)
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
                map[key, default: .zero] = Cell(repeating: v)
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
        for (k, v) in map.reversed() { reversed[k, default: .zero] = v }
        #expect(reversed == map)
        reversed[map.keys[0], default: .zero] &+= unit(0)
        #expect(reversed != map)
    }
}
