import Testing
@testable import UndercurrentCLI

/// `simulate`'s "about N s left" for a business that grows: its cost per simulated day triples from start to end.
@Suite struct RemainingTimeTests {
    /// Wall seconds to simulate up to `u` (a share of the simulated time, 0...1) when the cost per share is
    /// 1 + 2u (per unit of share): the integral u + u².
    static func wall(_ u: Double) -> Double { 100 * (u + u * u) }

    /// Updated as `simulate` does, 400 times through the run: at a quarter, half and three quarters of the simulated
    /// time the estimate is within 5% of the truth, where the pace so far (the former estimate) promised 36-44% too
    /// little (at a quarter: 94 s of 169). The share shown beside it is the simulated time behind.
    @Test func aGrowingBusinessIsForeseen() {
        let start: Int64 = 0, end: Int64 = 400_000
        var remaining = RemainingTime(start: start, end: end)
        var checked = 0
        for k in 1...400 {
            let u = Double(k) / 400
            let estimate = remaining.update(wall: Self.wall(u), simulated: Int64(k) * 1000)
            if k < 4 { #expect(estimate == nil) } else { #expect(estimate != nil) }
            guard [100, 200, 300].contains(k), let estimate else { continue }
            let truth = Self.wall(1) - Self.wall(u)
            #expect(abs(estimate - truth) <= 0.05 * truth, "at \(u): estimated \(estimate) s, truly \(truth) s")
            #expect(abs(remaining.share(at: Int64(k) * 1000) - u) < 1e-12)
            checked += 1
        }
        #expect(checked == 3)
    }

    /// A steady business: the estimate is the pace so far.
    @Test func aSteadyBusinessIsThePaceSoFar() throws {
        var remaining = RemainingTime(start: 1_000, end: 101_000)
        var estimate: Double?
        for k in 1...40 { estimate = remaining.update(wall: Double(k) * 0.5, simulated: 1_000 + Int64(k) * 1000) }
        let e = try #require(estimate)
        #expect(abs(e - 30) < 0.01, "\(e)")  // 60 of 100 simulated seconds left at 0.5 s each
    }
}
