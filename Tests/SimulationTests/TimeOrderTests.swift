import Testing
import TestSupport

@testable import Simulation

@Suite struct TimeOrderTests {
    /// Against a plain sort on (time, batch index), over batches full of equal times (the simulator's
    /// windows keep customer and decision order through them), spans needing one to three passes, and
    /// buffers reused from a larger batch.
    @Test func sortsByTimeAndKeepsTheBatchOrderOfEqualTimes() {
        var rng = Xoshiro(seed: 11)
        var order = TimeOrder()
        for (n, span) in [(5_000, Int64(40)), (3_000, 90_000), (1, 1), (2, 1), (700, 6 * 3_600_000), (4_096, 30 * 86_400_000),
                          (100, 2_048), (0, 10)] {
            let start = Int64(1_700_000_000_000) + Int64(rng.next() % 1_000_000)
            let times = (0..<n).map { _ in start + Int64(rng.next() % UInt64(span)) }
            order.sort(times, start: start, span: span)
            let expected = times.indices.sorted { (times[$0], $0) < (times[$1], $1) }
            #expect(order.count == n)
            #expect((0..<order.count).map { order.index(at: $0) } == expected, "\(n) times over \(span) ms")
        }
    }
}
