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

// MARK: Plan

/// The offered load over time.
public enum RateProfile: Sendable, Equatable, CustomStringConvertible {
    case constant(Double)
    /// Linear from `from` to `to` events/s over `seconds`, then `to`.
    case ramp(from: Double, to: Double, seconds: Double)

    public func rate(at t: Double) -> Double {
        switch self {
        case let .constant(r): return r
        case let .ramp(a, b, s): return t >= s ? b : a + (b - a) * t / s
        }
    }

    /// Events offered in the first `t` seconds.
    public func total(until t: Double) -> Double {
        switch self {
        case let .constant(r): return r * t
        case let .ramp(a, b, s):
            let u = min(t, s)
            return a * u + (b - a) * u * u / (2 * s) + (t > s ? b * (t - s) : 0)
        }
    }

    /// `5000:200000:60s`.
    public static func parseRamp(_ text: String) throws -> RateProfile {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 3, let a = Double(parts[0]), let b = Double(parts[1]), a > 0, b > 0,
              let s = try? DurationArgument.parse(parts[2], option: "--ramp"), s > 0 else {
            throw ValidationError("--ramp: expected FROM:TO:DURATION in events/s, e.g. 5000:200000:60s; got '\(text)'")
        }
        return .ramp(from: a, to: b, seconds: s)
    }

    public var description: String {
        switch self {
        case let .constant(r): return "\(compact(r)) events/s"
        case let .ramp(a, b, s): return "ramp \(compact(a)) → \(compact(b)) events/s over \(compact(s)) s"
        }
    }
}

/// `30s`, `500ms`, `2m`, or plain seconds.
public enum DurationArgument {
    public static func parse(_ text: String, option: String) throws -> Double {
        let units: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, f) in units where text.hasSuffix(u) {
            if let v = Double(text.dropLast(u.count)), v >= 0, v.isFinite { return v * f }
        }
        if let v = Double(text), v >= 0, v.isFinite { return v }
        throw ValidationError("\(option): expected a duration like 30s, 500ms or 2m; got '\(text)'")
    }
}

/// A service-level objective: `p99<50ms`, `lag<5s`, `rate>90000`, `errors<1`.
public struct SLO: Sendable, Equatable, CustomStringConvertible, Codable {
    public enum Metric: String, Sendable, CaseIterable, Codable {
        case p50, p90, p99, p999, max
        case lag
        case deliveryP99 = "delivery_p99"
        case rate
        case errors
        var isTime: Bool { ![.rate, .errors].contains(self) }
    }
    public var metric: Metric
    public var lessThan: Bool
    /// Seconds for times, events/s for rate, a count for errors.
    public var threshold: Double
    public var text: String

    public static func parse(_ text: String) throws -> SLO {
        let op: Character = text.contains("<") ? "<" : ">"
        let parts = text.split(separator: op, maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
        let names = Metric.allCases.map(\.rawValue).joined(separator: ", ")
        guard parts.count == 2, let metric = Metric(rawValue: parts[0]) else {
            throw ValidationError("--slo: expected METRIC<VALUE or METRIC>VALUE with METRIC one of \(names); got '\(text)'")
        }
        let value: Double
        if metric.isTime {
            value = try DurationArgument.parse(parts[1], option: "--slo \(metric.rawValue)")
        } else {
            let v = parts[1].lowercased()
            let scale: Double = v.hasSuffix("k") ? 1e3 : v.hasSuffix("m") ? 1e6 : 1
            guard let n = Double(scale == 1 ? v : String(v.dropLast())), n >= 0 else {
                throw ValidationError("--slo \(metric.rawValue): expected a number, e.g. \(metric.rawValue)\(op)1000; got '\(parts[1])'")
            }
            value = n * scale
        }
        return SLO(metric: metric, lessThan: op == "<", threshold: value, text: text)
    }

    public var description: String { text }
}

// MARK: Measurements

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

/// One second of the test.
public struct LoadSample: Codable, Sendable {
    public var second: Double
    public var targetRate: Double
    public var sentRate: Double
    public var appliedRate: Double
    public var e2eP50ms: Double?
    public var e2eP90ms: Double?
    public var e2eP99ms: Double?
    public var e2eMaxms: Double?
    public var deliveryP99ms: Double?
    /// Sent but not yet applied to the marts.
    public var lagMessages: Int
    /// How long ago the oldest not-yet-applied message was sent.
    public var lagSeconds: Double
    public var storm: Bool
}

public struct Percentiles: Codable, Sendable {
    public var count: UInt64
    public var p50ms: Double
    public var p90ms: Double
    public var p99ms: Double
    public var p999ms: Double
    public var maxms: Double

    init(_ h: Histogram<UInt64>) {
        count = h.totalCount
        func ms(_ p: Double) -> Double { h.totalCount == 0 ? 0 : Double(h.valueAtPercentile(p)) / 1000 }
        p50ms = ms(50); p90ms = ms(90); p99ms = ms(99); p999ms = ms(99.9)
        maxms = h.totalCount == 0 ? 0 : Double(h.max) / 1000
    }
}

public struct LoadReport: Codable, Sendable {
    public struct SLOResult: Codable, Sendable {
        public var slo: SLO
        public var observed: Double
        public var met: Bool
    }
    public var scenario: String
    public var profile: String
    public var durationSeconds: Double
    public var warmupSeconds = 0.0
    public var customers: Int
    public var partitions: Int
    public var cluster: String
    public var sent = 0
    public var delivered = 0
    public var deliveryFailures = 0
    public var applied = 0
    public var accepted = 0
    public var deadLettered = 0
    public var duplicates = 0
    public var producerRate = 0.0
    public var simulationExhausted = false
    public var drained = false
    /// Why the consumer stopped early, if it did (e.g. it fell so far behind that the broker dropped data).
    public var consumerError: String?
    public var delivery: Percentiles
    public var endToEnd: Percentiles
    public var checkpoints: Percentiles
    public var maxLagSeconds = 0.0
    public var maxLagMessages = 0
    public var storm: String?
    public var alerts: [String] = []
    public var errors = 0
    public var slos: [SLOResult] = []
    public var samples: [LoadSample] = []

    public var slosMet: Bool { slos.allSatisfy(\.met) }

    func observed(_ m: SLO.Metric) -> Double {
        switch m {
        case .p50: return endToEnd.p50ms / 1000
        case .p90: return endToEnd.p90ms / 1000
        case .p99: return endToEnd.p99ms / 1000
        case .p999: return endToEnd.p999ms / 1000
        case .max: return endToEnd.maxms / 1000
        case .lag: return maxLagSeconds
        case .deliveryP99: return delivery.p99ms / 1000
        case .rate: return producerRate
        case .errors: return Double(errors)
        }
    }

    public mutating func evaluate(_ objectives: [SLO]) {
        slos = objectives.map { o in
            let v = observed(o.metric)
            return SLOResult(slo: o, observed: v, met: o.lessThan ? v < o.threshold : v > o.threshold)
        }
    }
}

// MARK: Run

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

extension LoadReport {
    public var summaryTable: String {
        func row(_ k: String, _ v: String) -> String { k.padding(toLength: 30, withPad: " ", startingAt: 0) + v }
        func p(_ x: Percentiles) -> String {
            String(format: "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", x.p50ms, x.p90ms, x.p99ms, x.p999ms, x.maxms)
        }
        var lines = [
            row("scenario / load", "\(scenario), \(profile) for \(compact(durationSeconds)) s, \(customers) customers, \(partitions) partitions"),
            row("cluster", cluster),
            row("sent / delivered / failed", "\(sent) / \(delivered) / \(deliveryFailures)"),
            row("producer throughput", "\(compact(producerRate)) events/s"),
            row("delivery latency", p(delivery)),
            row("applied to marts", "\(applied) (accepted \(accepted), dead-lettered \(deadLettered), duplicates \(duplicates))\(drained ? "" : "  NOT DRAINED")"),
            row("end-to-end latency", p(endToEnd) + (warmupSeconds > 0 ? " (after \(compact(warmupSeconds)) s of warm-up)" : "")),
            row("max lag", "\(maxLagMessages) messages, \(String(format: "%.2f", maxLagSeconds)) s"),
            row("checkpoints", "\(checkpoints.count): p50 \(String(format: "%.1f", checkpoints.p50ms)) ms, max \(String(format: "%.1f", checkpoints.maxms)) ms"),
            row("errors", "\(errors)"),
        ]
        if let storm { lines.append(row("failure storm", storm)) }
        if let consumerError { lines.append(row("consumer stopped", consumerError)) }
        if simulationExhausted { lines.append(row("note", "the simulation ran out of events early; raise --customers")) }
        lines.append(row("alerts", alerts.isEmpty ? "none" : "\(alerts.count)"))
        for a in alerts.prefix(10) { lines.append(row("", a)) }
        for r in slos {
            let v = r.slo.metric.isTime ? String(format: "%.3f s", r.observed) : compact(r.observed)
            lines.append(row("SLO \(r.slo.text)", "\(r.met ? "met" : "VIOLATED") (observed \(v))"))
        }
        return lines.joined(separator: "\n")
    }

    public var html: String {
        let labels = samples.map { compact($0.second) }
        let rate = lineChart(title: "Throughput (events/s)", labels: labels, series: [
            Series(name: "target", values: samples.map { $0.targetRate }),
            Series(name: "sent", values: samples.map { $0.sentRate }),
            Series(name: "applied to marts", values: samples.map { $0.appliedRate }),
        ], style: ChartStyle(yLabel: "events/s"))
        let latency = lineChart(title: "End-to-end latency per second (ms)", labels: labels, series: [
            Series(name: "p50", values: samples.map(\.e2eP50ms)),
            Series(name: "p90", values: samples.map(\.e2eP90ms)),
            Series(name: "p99", values: samples.map(\.e2eP99ms)),
            Series(name: "max", values: samples.map(\.e2eMaxms)),
        ], style: ChartStyle(yLabel: "ms"))
        let lag = lineChart(title: "Consumer lag (s)", labels: labels, series: [
            Series(name: "lag (s)", values: samples.map { $0.lagSeconds }, notes: samples.map { "\($0.lagMessages) messages not yet applied" + ($0.storm ? "; failure storm on" : "") }),
        ], style: ChartStyle(yLabel: "seconds"))
        let delivery = lineChart(title: "Producer delivery latency p99 (ms)", labels: labels, series: [
            Series(name: "delivery p99", values: samples.map(\.deliveryP99ms)),
        ], style: ChartStyle(yLabel: "ms"))
        let verdict = slos.isEmpty ? "" : (slosMet ? "<p class=\"ok\">All service-level objectives met.</p>" : "<p class=\"bad\">Service-level objectives violated: \(escape(slos.filter { !$0.met }.map(\.slo.text).joined(separator: ", "))).</p>")
        return """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Undercurrent load test</title>
        <style>body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1340px}pre{background:#f6f6f6;padding:12px;overflow:auto}
        .charts{display:flex;flex-wrap:wrap;gap:16px}.ok{color:#0a7d32;font-weight:600}.bad{color:#b00020;font-weight:600}
        svg .point:hover,svg .bar:hover{opacity:.7}</style></head><body>
        <h1>Load test: \(escape(scenario))</h1>\(verdict)
        <pre>\(escape(summaryTable))</pre>
        <div class="charts">\(rate)\(latency)\(lag)\(delivery)</div>
        </body></html>
        """
    }
}

public struct LoadTestCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Drive payment flows at a target rate with the marts consumer running, and measure it.",
        discussion: """
        Runs against the embedded broker unless --bootstrap-servers (or -X bootstrap.servers) names a cluster;
        writes to topics prefixed with --topic-prefix, so live topics are untouched. Measures producer throughput
        and delivery latency, end-to-end latency from send to the marts (HDR histogram), lag over time,
        checkpoint times and errors; writes REPORT.json and REPORT.html. Exit code 3 when an --slo is violated.
        """
    )

    @Option(help: "Constant offered load, events/s.") var rate: Double?
    @Option(help: "A ramp FROM:TO:DURATION, e.g. 5000:200000:60s.") var ramp: String?
    @Option(help: "How long to offer load, e.g. 60s or 2m.") var duration = "30s"
    @Option(help: "An objective, e.g. p99<50ms, lag<5s, rate>90000, errors<1 (repeatable).") var slo: [String] = []
    @Option(help: "A YAML file with a list 'slos:' of objectives, as --slo.") var sloFile: String?
    @Option(help: "During the storm, this share of payment attempts fails (0-1).") var failureRate: Double?
    @Option(help: "When the failure storm starts, e.g. 10s.") var stormAt = "10s"
    @Option(help: "How long the failure storm lasts, e.g. 20s.") var stormFor = "20s"
    @Option(help: "The failure reason of the storm's failures.") var stormReason = "gateway_timeout"
    @Option(help: "Report files to write: PATH.json and PATH.html.") var report = "loadtest-report"
    @Option(help: "Prefix of the load test's topics.") var topicPrefix = "loadtest."
    @Option(help: "Embedded broker: partitions per topic.") var partitions = 6
    @Option(help: "Directory for the consumer's checkpoints (default: a temporary directory).") var stateDir: String?
    @Option(help: "Seconds to wait after the load for the consumer to catch up.") var drainTimeout: Double = 60
    @Option(help: "Leave messages sent in this first stretch out of the overall latency figures (group join, first fetches).") var warmup = "2s"
    @Flag(help: "Do not evaluate failure-spike alerts in the consumer.") var noAlerts = false
    @Option(help: "Alert rules (default: alerts.yaml in the config directory; config/alerts-small-business.yaml suits small simulated businesses).") var alerts: String?
    @OptionGroup var simulation: SimulationOptions
    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var common: CommonOptions

    public init() {}

    public func validate() throws { _ = try plan() }

    func objectives() throws -> [SLO] {
        var texts = slo
        if let sloFile {
            guard let data = FileManager.default.contents(atPath: sloFile) else { throw ValidationError("--slo-file: cannot read \(sloFile)") }
            let text = String(decoding: data, as: UTF8.self)
            guard let list = try? YAMLList.strings(text, key: "slos") else {
                throw ValidationError("--slo-file \(sloFile): expected a YAML mapping with a list 'slos:' of objectives like p99<50ms")
            }
            texts += list
        }
        return try texts.map(SLO.parse)
    }

    func plan() throws -> LoadTest {
        var t = LoadTest()
        guard rate == nil || ramp == nil else { throw ValidationError("choose one of --rate and --ramp") }
        if let rate {
            guard rate > 0, rate.isFinite else { throw ValidationError("--rate: expected a positive number of events per second, got \(rate)") }
            t.profile = .constant(rate)
        } else if let ramp {
            t.profile = try RateProfile.parseRamp(ramp)
        }
        t.duration = try DurationArgument.parse(duration, option: "--duration")
        guard t.duration > 0 else { throw ValidationError("--duration: expected a positive duration") }
        if let failureRate {
            guard (0...1).contains(failureRate) else { throw ValidationError("--failure-rate: expected a share from 0 to 1, got \(failureRate)") }
            guard let reason = FailureReason(rawValue: stormReason) else {
                throw ValidationError("--storm-reason: expected one of \(FailureReason.allCases.map(\.rawValue).joined(separator: ", ")); got '\(stormReason)'")
            }
            t.storm = (failureRate, try DurationArgument.parse(stormAt, option: "--storm-at"), try DurationArgument.parse(stormFor, option: "--storm-for"), reason)
        }
        guard (1...256).contains(partitions) else { throw ValidationError("--partitions: expected 1 to 256") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout: expected seconds ≥ 0") }
        t.topicPrefix = topicPrefix
        t.drainTimeout = drainTimeout
        t.warmup = try DurationArgument.parse(warmup, option: "--warmup")
        _ = try objectives()
        return t
    }

    public func run() throws {
        let logger = common.makeLogger("loadtest")
        var test = try plan()
        let objectives = try objectives()
        if !noAlerts { test.alertRules = try AlertConfig.load(file: alerts, configDir: simulation.configDir) }
        var parameters = try simulation.parameters()
        // Size the simulated business to the planned load unless --customers was given.
        if !CommandLine.arguments.contains("--customers") {
            parameters.customers = try LoadTest.customersFor(events: test.profile.total(until: test.duration), parameters: parameters)
        }
        let stop = StopSignal()
        var broker: EmbeddedBroker? = nil
        var config: KafkaConfig
        let cluster: String
        let useEmbedded = kafka.bootstrapServers == nil && !kafka.properties.contains { $0.hasPrefix("bootstrap.servers=") }
        if useEmbedded {
            let b = try EmbeddedBroker(brokers: 1, logger: logger)
            for name in (Topics.inputs + Topics.outputs).map({ topicPrefix + $0 }) {
                try b.createTopic(name, partitions: partitions, replicationFactor: 1)
            }
            broker = b
            config = KafkaConfig()
            for p in kafka.properties { let (k, v) = try KafkaConfig.parseAssignment(p); config[k] = v }
            config["bootstrap.servers"] = b.bootstrapServers
            // A short fetch wait keeps the measured latency the pipeline's own (see `EmbeddedBroker.tuned`).
            config = EmbeddedBroker.tuned(config).0
            cluster = "embedded broker (librdkafka mock cluster) at \(b.bootstrapServers)"
        } else {
            config = try kafka.kafkaConfig()
            let admin = try KafkaAdmin(config: config, logger: logger)
            do {
                try admin.createTopics((Topics.inputs + Topics.outputs).map { (topicPrefix + $0, partitions, 1) })
            } catch {
                logger.notice("could not create the load-test topics (\(error)); using them as they are")
            }
            cluster = config["bootstrap.servers"] ?? "?"
        }
        let state: URL
        if let stateDir { state = URL(fileURLWithPath: stateDir) } else {
            state = FileManager.default.temporaryDirectory.appendingPathComponent("undercurrent-loadtest-\(ProcessInfo.processInfo.processIdentifier)")
        }
        defer { if stateDir == nil { try? FileManager.default.removeItem(at: state) } }
        Console.err("loadtest: \(test.profile) for \(compact(test.duration)) s, scenario \(simulation.scenario), \(parameters.customers) customers, \(cluster)")
        var result = try test.run(parameters: parameters, scenario: simulation.scenario, kafka: config, partitions: partitions,
                                  cluster: cluster, stateDirectory: state, stop: stop, logger: logger)
        _ = broker
        result.evaluate(objectives)
        Console.endProgress()
        Console.out(result.summaryTable)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: URL(fileURLWithPath: report + ".json"), options: .atomic)
        try Data(result.html.utf8).write(to: URL(fileURLWithPath: report + ".html"), options: .atomic)
        Console.err("loadtest: report written to \(report).json and \(report).html")
        if stop.isStopped { throw ExitCode(130) }
        if !result.slosMet { throw ExitCode(3) }
        if result.errors > 0 && objectives.isEmpty { throw ExitCode(1) }
    }
}

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

/// Reads a top-level list of strings from a small YAML document.
enum YAMLList {
    static func strings(_ text: String, key: String) throws -> [String] {
        guard let root = try Yams.load(yaml: text) as? [String: Any], let list = root[key] as? [Any] else { throw CLIError("no list '\(key)'") }
        return list.map { "\($0)" }
    }
}
