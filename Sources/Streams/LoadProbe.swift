import Consumer
import Foundation
import Histogram
import Kafka
import Synchronization

/// What the consumer reports from the inside: end-to-end latency of each load-test message (its send
/// time travels in the `sent-ns` header) and each checkpoint's duration (histograms in microseconds); when it
/// got its partitions and how many messages it has applied, which the producer's loop waits on without polling.
final class LoadProbe: ConsumerProbe, @unchecked Sendable {
    struct Histograms {
        var e2e = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var e2eInterval = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var checkpoints = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }
    let histograms = Mutex(Histograms())
    let applied = Atomic<Int>(0)
    /// Messages sent before this time (uptime ns) are warm-up: left out of the overall histogram.
    let measureFrom = Atomic<UInt64>(0)

    /// Opened when the consumer has its partitions, or has ended without them, or the waits were interrupted.
    let ready = Latch()
    /// Wakes `waitForApplied`: signalled when `applied` reaches `target`, or the consumer ends.
    private let progress = NSCondition()
    private let target = Atomic<Int>(Int.max)
    private let consumerEnded = Atomic<Bool>(false)
    private let interrupted = Atomic<Bool>(false)

    func assigned() { ready.open() }

    /// Whether the consumer's thread has returned.
    var hasEnded: Bool { consumerEnded.load(ordering: .acquiring) }

    /// The consumer's thread has returned: nothing more will be applied.
    func ended() {
        consumerEnded.store(true, ordering: .releasing)
        wakeWaiters()
    }

    /// The load test is stopping: the waits return at once.
    func interruptWaits() {
        interrupted.store(true, ordering: .releasing)
        wakeWaiters()
    }

    private func wakeWaiters() {
        ready.open()
        progress.lock()
        progress.broadcast()
        progress.unlock()
    }

    /// Blocks until `count` messages have been applied (true), the consumer has ended, the waits were
    /// interrupted or `deadline` has passed.
    func waitForApplied(_ count: Int, until deadline: ContinuousClock.Instant) -> Bool {
        target.store(count, ordering: .releasing)
        defer { target.store(Int.max, ordering: .releasing) }
        progress.lock()
        defer { progress.unlock() }
        while applied.load(ordering: .acquiring) < count && !consumerEnded.load(ordering: .acquiring) && !interrupted.load(ordering: .acquiring) {
            if !progress.wait(until: deadline) { break }
        }
        return applied.load(ordering: .acquiring) >= count
    }

    func applied(_ message: KafkaMessage) {
        if applied.add(1, ordering: .acquiringAndReleasing).newValue >= target.load(ordering: .acquiring) {
            progress.lock()
            progress.broadcast()
            progress.unlock()
        }
        guard let h = message.header(LoadTest.sentHeader), h.count == 8 else { return }
        var sent: UInt64 = 0
        for b in h { sent = sent << 8 | UInt64(b) }
        let now = DispatchTime.now().uptimeNanoseconds
        let micros = now > sent ? (now - sent) / 1000 : 0
        let measured = sent >= measureFrom.load(ordering: .relaxed)
        histograms.withLock {
            if measured { _ = $0.e2e.record(micros) }
            _ = $0.e2eInterval.record(micros)
        }
    }

    func checkpointed(seconds: Double) {
        histograms.withLock { _ = $0.checkpoints.record(UInt64(max(0, seconds * 1e6))) }
    }
}
