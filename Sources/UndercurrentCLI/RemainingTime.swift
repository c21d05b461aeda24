/// Seconds left of a run through simulated time whose cost per simulated day grows as the simulated business does
/// (`simulate`: a business that doubles makes twice the events a day by the end). The pace over the whole run so
/// far alone promises too little: it averages in the early, cheaper days. This takes the cost (wall seconds per
/// simulated second) as growing linearly with simulated time: the average so far is its value halfway, the pace
/// over the last quarter of the simulated time so far its value now, and the rest is the integral ahead.
struct RemainingTime {
    let start: Int64
    let end: Int64
    /// (wall seconds, simulated ms) at each update, back to a quarter of the simulated time so far.
    private var samples: [(wall: Double, simulated: Int64)] = []

    /// `start` and `end`: the simulated time's bounds, in ms.
    init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    /// The share of the simulated time behind at `simulated` (ms), in 0...1.
    func share(at simulated: Int64) -> Double {
        min(1, max(0, Double(simulated - start) / Double(max(1, end - start))))
    }

    /// Records that `wall` seconds in, the run is at simulated time `simulated` (ms); returns the seconds left, or
    /// nil while less than 1% of the simulated time is behind.
    mutating func update(wall: Double, simulated: Int64) -> Double? {
        samples.append((wall, simulated))
        let done = Double(simulated - start), total = Double(end - start)
        guard total > 0, done >= 0.01 * total, wall > 0 else { return nil }
        while samples.count > 2, Double(simulated - samples[1].simulated) >= done / 4 { samples.removeFirst() }
        let average = wall / done
        let first = samples[0]
        let recentSpan = Double(simulated - first.simulated)
        let now = recentSpan > 0 && first.simulated > start ? (wall - first.wall) / recentSpan : average
        // The recent window's middle is `recentSpan / 2` behind `simulated`; the average sits at `done / 2`.
        let slope = max(0, (now - average) / max(done / 2 - recentSpan / 2, 1))
        let ahead = max(0, total - done)
        let current = now + slope * recentSpan / 2  // the cost at `simulated` itself
        return current * ahead + slope * ahead * ahead / 2
    }
}
