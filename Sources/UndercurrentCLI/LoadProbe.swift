import Consumer
import Config
import ArgumentParser
import Charts
import Events
import Foundation
import Histogram
import Kafka
import Logging
import Marts
import Simulation
import Synchronization
import Yams

/// What the consumer reports from the inside: end-to-end latency of each load-test message (its send
/// time travels in the `sent-ns` header) and each checkpoint's duration. Histograms in microseconds.
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

    func applied(_ message: KafkaMessage) {
        applied.add(1, ordering: .relaxed)
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
