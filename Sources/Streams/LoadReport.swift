import Charts
import Foundation
import Histogram

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
