import Charts
import Consumer
import Events
import Foundation
import Histogram
import Kafka
import Logging
import Simulation
import Synchronization

/// The load test's producer side, run as a service on a thread of its own: waits for the consumer's
/// partitions, sends the simulated events at the planned rate (switching the failure storm on and off), takes a
/// sample each second, then waits for the consumer to apply everything sent (or the drain timeout).
///
/// `@unchecked Sendable`: everything mutable is used by the one thread that runs `run`, and read by the caller
/// only after the service group has returned.
final class LoadSendLoop: @unchecked Sendable {
    let test: LoadTest
    var world: World
    let producer: KafkaProducer
    let probe: LoadProbe
    let delivery: DeliveryLatency
    let topics: [InputTopic: String]
    let stormControl: StormControl?
    let logger: Logger
    let report: @Sendable (String) -> Void

    private(set) var sent = 0
    private(set) var samples: [LoadSample] = []
    private(set) var simulationExhausted = false
    private(set) var drained = false
    private(set) var sendSeconds = 0.0
    /// Every 256th message's send time, to tell how far behind the consumer is in seconds.
    private var sendLog: [(count: Int, ns: UInt64)] = []
    private var lastSent = 0, lastApplied = 0

    init(test: LoadTest, world: World, producer: KafkaProducer, probe: LoadProbe, delivery: DeliveryLatency, topics: [InputTopic: String],
         stormControl: StormControl?, logger: Logger, report: @escaping @Sendable (String) -> Void) {
        self.test = test
        self.world = world
        self.producer = producer
        self.probe = probe
        self.delivery = delivery
        self.topics = topics
        self.stormControl = stormControl
        self.logger = logger
        self.report = report
    }

    func run(stop: StopSignal) throws {
        stop.onStop { [probe] in probe.interruptWaits() }
        // Wait for the consumer's assignment, so the first messages' latency is not the group join.
        if !probe.ready.wait(until: ContinuousClock.now + .seconds(30)) {
            logger.warning("the consumer has no partitions after 30 s; sending anyway")
        }

        let (duration, profile) = (test.duration, test.profile)
        var typeHeaders: [EventType: KafkaHeader] = [:]
        for t in EventType.allCases { typeHeaders[t] = KafkaHeader("event-type", t.rawValue) }
        let schema = KafkaHeader("schema", "1")
        var value: [UInt8] = []
        let start = ContinuousClock.now
        let warmupEnd = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, min(test.warmup, duration / 2)) * 1e9)
        delivery.measureFrom.store(warmupEnd, ordering: .relaxed)
        probe.measureFrom.store(warmupEnd, ordering: .relaxed)
        var nextSample = 1.0
        var stormOn = false
        while !stop.isStopped {
            let now = (ContinuousClock.now - start).seconds
            // At the plan's end what it holds in all is sent (the events due at the very end too), then the loop ends.
            let ended = now >= duration
            let t = min(now, duration)
            if let storm = test.storm, let control = stormControl {
                let on = t >= storm.at && t < storm.at + storm.length
                if on != stormOn {
                    control.failureRate = on ? storm.rate : 0
                    stormOn = on
                    logger.notice(on ? "failure storm on: \(Int(storm.rate * 100))% \(storm.reason.rawValue)" : "failure storm off")
                }
            }
            if !ended && t >= nextSample {
                takeSample(at: nextSample, stormOn: stormOn)
                nextSample += 1
            }
            // Send what is due by now; when ahead of the plan, wait half a millisecond (the pacing step). (The
            // margin: a whole number of events planned must not come out one short of it in floating point.)
            let due = Int(profile.total(until: t) + 1e-6)
            if sent >= due {
                if ended { break }
                stop.sleep(.microseconds(500))
                continue
            }
            var batch = min(due - sent, 2000)
            while batch > 0 {
                guard let event = world.next() else { simulationExhausted = true; break }
                value.removeAll(keepingCapacity: true)
                EventEncoder.encode(event, into: &value)
                let ns = DispatchTime.now().uptimeNanoseconds
                var sentBytes = [UInt8](repeating: 0, count: 8)
                for i in 0..<8 { sentBytes[i] = UInt8(truncatingIfNeeded: ns >> (56 - 8 * UInt64(i))) }
                guard try producer.send(ProducerMessage(topic: topics[event.topic]!, key: Array(event.customerID.utf8), value: value,
                                                        headers: [typeHeaders[event.type]!, schema, KafkaHeader(LoadTest.sentHeader, sentBytes)],
                                                        timestampMs: event.occurredAt.ms), token: UInt(ns), cancelled: { stop.isStopped })
                else { break }
                sent += 1
                if sent & 255 == 0 { sendLog.append((sent, ns)) }
                batch -= 1
            }
            if simulationExhausted {
                logger.warning("the simulation ran out of events after \(sent); raise --customers or --months")
                break
            }
        }
        stormControl?.failureRate = 0
        sendSeconds = (ContinuousClock.now - start).seconds
        try? producer.flush(timeout: .seconds(60))
        // Drain: wait until the consumer has applied everything sent, waking at each second's sample.
        let drainDeadline = ContinuousClock.now + .milliseconds(Int64(test.drainTimeout * 1000))
        while !stop.isStopped {
            let sampleAt = start + .milliseconds(Int64(nextSample * 1000))
            if probe.waitForApplied(sent, until: min(sampleAt, drainDeadline)) { break }
            if ContinuousClock.now >= drainDeadline || probe.hasEnded { break }
            if ContinuousClock.now >= sampleAt {
                takeSample(at: nextSample, stormOn: false)
                nextSample += 1
            }
        }
        let t = (ContinuousClock.now - start).seconds
        if t > nextSample - 1 + 0.05 { takeSample(at: t, stormOn: false) }
        drained = probe.applied.load(ordering: .relaxed) >= sent
    }

    private func takeSample(at t: Double, stormOn: Bool) {
        let applied = probe.applied.load(ordering: .relaxed)
        let e2e = probe.histograms.withLock { h -> Histogram<UInt64> in
            defer { h.e2eInterval.reset() }
            return h.e2eInterval
        }
        let dl = delivery.takeInterval()
        var lagSeconds = 0.0
        if applied < sent, let i = sendLog.firstIndex(where: { $0.count > applied }) {
            let ns = sendLog[max(0, i - 1)].ns
            lagSeconds = Double(DispatchTime.now().uptimeNanoseconds &- ns) / 1e9
        }
        func ms(_ h: Histogram<UInt64>, _ p: Double) -> Double? { h.totalCount == 0 ? nil : Double(h.valueAtPercentile(p)) / 1000 }
        let s = LoadSample(second: t, targetRate: test.profile.planned(sampleAt: t, duration: test.duration), sentRate: Double(sent - lastSent),
                           appliedRate: Double(applied - lastApplied), e2eP50ms: ms(e2e, 50), e2eP90ms: ms(e2e, 90),
                           e2eP99ms: ms(e2e, 99), e2eMaxms: e2e.totalCount == 0 ? nil : Double(e2e.max) / 1000,
                           deliveryP99ms: ms(dl, 99), lagMessages: sent - applied, lagSeconds: lagSeconds, storm: stormOn)
        samples.append(s)
        lastSent = sent
        lastApplied = applied
        let st = producer.statistics
        report("loadtest \(Int(t)) s: target \(compact(s.targetRate))/s, sent \(compact(s.sentRate))/s, applied \(compact(s.appliedRate))/s, e2e p99 \(s.e2eP99ms.map { "\(compact($0)) ms" } ?? "-"), lag \(s.lagMessages) msgs / \(String(format: "%.2f", lagSeconds)) s, delivery failures \(st.failed)")
    }
}
