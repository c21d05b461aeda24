import Testing
import Telemetry

@Suite struct LagClockTests {
    @Test func atTheEndThereIsNoLag() {
        var clock = LagClock<Int>()
        clock.record(0, end: 100, at: 10)
        #expect(clock.lagSeconds(0, position: 100, now: 50) == 0)
        #expect(clock.lagSeconds(0, position: 120, now: 50) == 0)
        #expect(clock.lagSeconds(1, position: 0, now: 50) == 0, "a partition never sampled")
    }

    @Test func interpolatesBetweenTheSamplesAroundThePosition() {
        var clock = LagClock<Int>()
        // The end grows 10 messages a second from t=100.
        for t in 0...10 { clock.record(0, end: Int64(1000 + 10 * t), at: Double(100 + t)) }
        // Offset 1049 was written when the end reached 1050: at t=105.
        #expect(abs(clock.lagSeconds(0, position: 1049, now: 110) - 5) < 1e-9)
        // Offset 1044 when the end reached 1045: halfway between t=104 and t=105.
        #expect(abs(clock.lagSeconds(0, position: 1044, now: 110) - 5.5) < 1e-9)
    }

    @Test func samplesThatDoNotMoveTheEndKeepTheEarlierTime() {
        var clock = LagClock<Int>()
        clock.record(0, end: 10, at: 0)
        clock.record(0, end: 20, at: 100)
        clock.record(0, end: 20, at: 200)  // nothing new was written: the end reached 20 at t=100 or before
        #expect(abs(clock.lagSeconds(0, position: 19, now: 300) - 200) < 1e-9)
    }

    @Test func beforeTheOldestSampleTheLagIsALowerBound() {
        var clock = LagClock<Int>()
        clock.capacity = 3
        for t in 0..<10 { clock.record(0, end: Int64(t + 1) * 100, at: Double(t)) }
        // Kept: ends 800, 900, 1000 at t=7, 8, 9. Offset 5 was written long before t=7.
        #expect(clock.lagSeconds(0, position: 5, now: 20) == 13)
        clock.remove(0)
        #expect(clock.lagSeconds(0, position: 5, now: 20) == 0)
    }
}
