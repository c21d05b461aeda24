import Foundation
import Telemetry
import Testing
import TestSupport

@Suite struct MetricsRegistryTests {
    @Test func instrumentsAppearInTheExpositionWithTheirHelpAndPassPromtool() throws {
        let registry = MetricsRegistry()
        let sent = registry.counter("demo_messages_total", help: "Messages.", labels: [("topic", "billing")])
        sent.increment(by: 5)
        registry.gauge("demo_queue_messages", help: "Queued.").set(3.0)
        registry.histogram("demo_duration_seconds", help: "Durations.", buckets: MetricsRegistry.durationBuckets)
            .recordNanoseconds(3_000_000)
        let text = registry.exposition()
        #expect(text.contains("# HELP demo_messages_total Messages.\n"))
        #expect(text.contains("demo_messages_total{topic=\"billing\"} 5\n"))
        #expect(text.contains("demo_queue_messages 3.0\n"))
        #expect(text.contains("demo_duration_seconds_bucket{le=\"0.0025\"} 0\n"))
        #expect(text.contains("demo_duration_seconds_bucket{le=\"0.005\"} 1\n"))
        #expect(text.contains("demo_duration_seconds_count 1\n"))
        try expectPromtoolAccepts(text)
    }

    @Test func aTotalCounterAddsWhatTheTotalGrewByAndRestartsWhenItFalls() {
        let registry = MetricsRegistry()
        let total = TotalCounter(registry.counter("demo_events_total", help: "Events."))
        total.update(10)
        total.update(10)
        total.update(25)
        #expect(registry.exposition().contains("demo_events_total 25\n"))
        total.update(4)  // the source started over: its 4 are new
        #expect(registry.exposition().contains("demo_events_total 29\n"))
    }

    @Test func collectorsRunBeforeEachExposition() {
        let registry = MetricsRegistry()
        let gauge = registry.gauge("demo_reads", help: "Reads.")
        let reads = Counted()
        registry.onCollect { gauge.set(Double(reads.next())) }
        #expect(registry.exposition().contains("demo_reads 1.0\n"))
        #expect(registry.exposition().contains("demo_reads 2.0\n"))
    }
}

private final class Counted: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func next() -> Int { lock.withLock { n += 1; return n } }
}
