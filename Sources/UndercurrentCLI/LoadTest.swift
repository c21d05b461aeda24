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

/// Drives simulated payment flows into Kafka at a target rate with the marts consumer running in the same
/// process, and measures throughput, delivery and end-to-end latency, lag and checkpoint times.
public struct LoadTest {
    static let sentHeader = "sent-ns"

    public var profile: RateProfile = .constant(10_000)
    public var duration = 30.0
    /// (failure rate, start second, length in seconds, reason)
    public var storm: (rate: Double, at: Double, length: Double, reason: FailureReason)?
    public var topicPrefix = "loadtest."
    public var drainTimeout = 60.0
    /// Seconds at the start whose messages are left out of the overall latency figures (group join,
    /// first fetches); they still appear in the per-second samples.
    public var warmup = 2.0
    public var alertRules: AlertRules?
    public var checkpointEvents = 50_000
    public var checkpointInterval = 2.0

    public init() {}

    public func run(parameters: SimulationParameters, scenario: String, kafka: KafkaConfig, partitions: Int, cluster: String,
                    stateDirectory: URL, stop: StopSignal, logger: Logger,
                    report: (String) -> Void = { Console.progress($0) }) throws -> LoadReport {
        var parameters = parameters
        let stormControl = storm.map { StormControl(reason: $0.reason) }
        parameters.storm = stormControl
        var world: World
        do { world = try World(parameters) } catch { throw ValidationError(error.description) }

        // The consumer, on its own thread, reading the load test's own topics.
        let probe = LoadProbe()
        var options = MartsConsumer.Options(stateDirectory: stateDirectory)
        options.group = "undercurrent-loadtest-\(ProcessInfo.processInfo.processIdentifier)-\(Int(Date().timeIntervalSince1970))"
        options.topics = Dictionary(uniqueKeysWithValues: InputTopic.allCases.map { ($0, topicPrefix + $0.rawValue) })
        options.deadLetterTopic = topicPrefix + Topics.deadLetter
        options.alertsTopic = topicPrefix + Topics.alerts
        options.riskTopic = topicPrefix + Topics.customerRisk
        options.alertRules = alertRules
        options.probe = probe
        options.rebuild = true
        options.checkpointEvents = checkpointEvents
        options.checkpointInterval = .milliseconds(Int64(checkpointInterval * 1000))
        options.reportInterval = .seconds(1)
        let consumer = MartsConsumer(options: options, logger: logger)
        let consumerStop = StopSignal(handleSignals: false)
        let consumerError = Mutex<(any Error)?>(nil)
        let consumerDone = Atomic<Bool>(false)
        let thread = Thread {
            do { try consumer.run(kafka: kafka, stop: consumerStop) } catch { consumerError.withLock { $0 = error } }
            consumerDone.store(true, ordering: .releasing)
        }
        thread.name = "marts-consumer"
        thread.start()

        // The producer, on this thread. Its delivery latency comes back through the delivery callback:
        // each message's token is its send time.
        let delivery = Mutex((total: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three),
                              interval: Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)))
        let measureFrom = Atomic<UInt64>(UInt64.max)
        let producer = try KafkaProducer(config: kafka, logger: logger) { r in
            guard case .success = r.result else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            let micros = now > UInt64(r.token) ? (now - UInt64(r.token)) / 1000 : 0
            let measured = UInt64(r.token) >= measureFrom.load(ordering: .relaxed)
            delivery.withLock {
                if measured { _ = $0.total.record(micros) }
                _ = $0.interval.record(micros)
            }
        }
        // Wait for the consumer's assignment, so the first messages' latency is not the group join.
        let joinDeadline = ContinuousClock.now + .seconds(30)
        while !consumer.isAssigned && !consumerDone.load(ordering: .acquiring) && ContinuousClock.now < joinDeadline {
            Thread.sleep(forTimeInterval: 0.05)
        }

        var rpt = LoadReport(scenario: scenario, profile: profile.description, durationSeconds: duration, customers: parameters.customers,
                             partitions: partitions, cluster: cluster, delivery: Percentiles(delivery.withLock { $0.total }),
                             endToEnd: Percentiles(probe.histograms.withLock { $0.e2e }),
                             checkpoints: Percentiles(probe.histograms.withLock { $0.checkpoints }))
        rpt.warmupSeconds = max(0, min(warmup, duration / 2))
        if let storm { rpt.storm = "\(Int(storm.rate * 100))% \(storm.reason.rawValue) from \(compact(storm.at)) s for \(compact(storm.length)) s" }
        let names = options.topics
        var typeHeaders: [EventType: KafkaHeader] = [:]
        for t in EventType.allCases { typeHeaders[t] = KafkaHeader("event-type", t.rawValue) }
        let schema = KafkaHeader("schema", "1")
        var value: [UInt8] = []
        var sendLog: [(count: Int, ns: UInt64)] = []
        var sent = 0
        let start = ContinuousClock.now
        let startNs = DispatchTime.now().uptimeNanoseconds
        let warmupEnd = startNs + UInt64(max(0, min(warmup, duration / 2)) * 1e9)
        measureFrom.store(warmupEnd, ordering: .relaxed)
        probe.measureFrom.store(warmupEnd, ordering: .relaxed)
        var nextSample = 1.0
        var lastSent = 0, lastApplied = 0
        var samples: [LoadSample] = []

        func takeSample(at t: Double, stormOn: Bool) {
            let applied = probe.applied.load(ordering: .relaxed)
            let e2e = probe.histograms.withLock { h -> Histogram<UInt64> in
                let copy = h.e2eInterval
                h.e2eInterval.reset()
                return copy
            }
            let dl = delivery.withLock { h -> Histogram<UInt64> in
                let copy = h.interval
                h.interval.reset()
                return copy
            }
            var lagSeconds = 0.0
            if applied < sent, let i = sendLog.firstIndex(where: { $0.count > applied }) {
                let ns = sendLog[max(0, i - 1)].ns
                lagSeconds = Double(DispatchTime.now().uptimeNanoseconds &- ns) / 1e9
            }
            func ms(_ h: Histogram<UInt64>, _ p: Double) -> Double? { h.totalCount == 0 ? nil : Double(h.valueAtPercentile(p)) / 1000 }
            let s = LoadSample(second: t, targetRate: t <= duration ? profile.rate(at: t) : 0, sentRate: Double(sent - lastSent),
                               appliedRate: Double(applied - lastApplied), e2eP50ms: ms(e2e, 50), e2eP90ms: ms(e2e, 90),
                               e2eP99ms: ms(e2e, 99), e2eMaxms: e2e.totalCount == 0 ? nil : Double(e2e.max) / 1000,
                               deliveryP99ms: ms(dl, 99), lagMessages: sent - applied, lagSeconds: lagSeconds, storm: stormOn)
            samples.append(s)
            lastSent = sent
            lastApplied = applied
            let st = producer.statistics
            report("loadtest \(Int(t)) s: target \(compact(s.targetRate))/s, sent \(compact(s.sentRate))/s, applied \(compact(s.appliedRate))/s, e2e p99 \(s.e2eP99ms.map { "\(compact($0)) ms" } ?? "-"), lag \(s.lagMessages) msgs / \(String(format: "%.2f", lagSeconds)) s, delivery failures \(st.failed)")
        }

        var stormOn = false
        while !stop.isStopped && !consumerDone.load(ordering: .acquiring) {
            let t = (ContinuousClock.now - start).seconds
            if t >= duration { break }
            if let storm, let control = stormControl {
                let on = t >= storm.at && t < storm.at + storm.length
                if on != stormOn {
                    control.failureRate = on ? storm.rate : 0
                    stormOn = on
                    logger.notice(on ? "failure storm on: \(Int(storm.rate * 100))% \(storm.reason.rawValue)" : "failure storm off")
                }
            }
            if t >= nextSample {
                takeSample(at: nextSample, stormOn: stormOn)
                nextSample += 1
            }
            // Send what is due by now; sleep briefly when ahead.
            let due = Int(profile.total(until: t))
            if sent >= due {
                Thread.sleep(forTimeInterval: 0.0005)
                continue
            }
            var batch = min(due - sent, 2000)
            while batch > 0 {
                guard let event = world.next() else { rpt.simulationExhausted = true; break }
                value.removeAll(keepingCapacity: true)
                EventEncoder.encode(event, into: &value)
                let ns = DispatchTime.now().uptimeNanoseconds
                var sentBytes = [UInt8](repeating: 0, count: 8)
                for i in 0..<8 { sentBytes[i] = UInt8(truncatingIfNeeded: ns >> (56 - 8 * UInt64(i))) }
                try producer.send(ProducerMessage(topic: names[event.topic]!, key: Array(event.customerID.utf8), value: value,
                                                  headers: [typeHeaders[event.type]!, schema, KafkaHeader(Self.sentHeader, sentBytes)],
                                                  timestampMs: event.occurredAt.ms), token: UInt(ns))
                sent += 1
                if sent & 255 == 0 { sendLog.append((sent, ns)) }
                batch -= 1
            }
            if rpt.simulationExhausted {
                logger.warning("the simulation ran out of events after \(sent); raise --customers or --months")
                break
            }
        }
        stormControl?.failureRate = 0
        let sendSeconds = (ContinuousClock.now - start).seconds
        try? producer.flush(timeout: .seconds(60))
        // Drain: wait until the consumer has applied everything sent (or the drain timeout).
        let drainDeadline = ContinuousClock.now + .milliseconds(Int64(drainTimeout * 1000))
        while probe.applied.load(ordering: .relaxed) < sent && ContinuousClock.now < drainDeadline && !consumerDone.load(ordering: .acquiring) {
            let t = (ContinuousClock.now - start).seconds
            if t >= nextSample {
                takeSample(at: nextSample, stormOn: false)
                nextSample += 1
            }
            Thread.sleep(forTimeInterval: 0.01)
            if stop.isStopped { break }
        }
        let t = (ContinuousClock.now - start).seconds
        if t > nextSample - 1 + 0.05 { takeSample(at: t, stormOn: false) }
        rpt.drained = probe.applied.load(ordering: .relaxed) >= sent
        consumerStop.stop()
        while !consumerDone.load(ordering: .acquiring) { Thread.sleep(forTimeInterval: 0.02) }
        if let e = consumerError.withLock({ $0 }) {
            rpt.consumerError = "\(e)"
            logger.error("the consumer stopped: \(e)")
        }

        let st = producer.statistics
        let cs = consumer.summary
        rpt.sent = sent
        rpt.delivered = st.delivered
        rpt.deliveryFailures = st.failed
        rpt.applied = probe.applied.load(ordering: .relaxed)
        rpt.accepted = cs.accepted
        rpt.deadLettered = cs.rejected
        rpt.duplicates = cs.duplicates
        rpt.producerRate = sendSeconds > 0 ? Double(sent) / sendSeconds : 0
        rpt.delivery = Percentiles(delivery.withLock { $0.total })
        rpt.endToEnd = Percentiles(probe.histograms.withLock { $0.e2e })
        rpt.checkpoints = Percentiles(probe.histograms.withLock { $0.checkpoints })
        rpt.maxLagSeconds = samples.map(\.lagSeconds).max() ?? 0
        rpt.maxLagMessages = samples.map(\.lagMessages).max() ?? 0
        rpt.alerts = consumer.alerts.map { "\($0.state.rawValue) \($0.rule) [\($0.scope)] at \($0.at): observed \(String(format: "%.1f%%", $0.observedRate * 100)) vs baseline \(String(format: "%.1f%%", $0.baselineRate * 100))" }
        rpt.errors = st.failed + cs.rejected + consumer.metrics.checkpointFailures + (rpt.drained ? 0 : 1) + (rpt.consumerError == nil ? 0 : 1)
        rpt.samples = samples
        return rpt
    }
}

// MARK: Report rendering

extension LoadTest {
    /// Customers needed for about `events` events: measured on a small sample of the same scenario.
    static func customersFor(events: Double, parameters: SimulationParameters) throws -> Int {
        var sample = parameters
        sample.customers = 300
        sample.storm = nil
        var w: World
        do { w = try World(sample) } catch { throw ValidationError(error.description) }
        var n = 0
        while w.next() != nil { n += 1 }
        let perCustomer = max(1.0, Double(n) / 300)
        return max(300, Int((events / perCustomer * 1.3).rounded(.up)) + 100)
    }
}
