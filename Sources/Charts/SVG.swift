import Foundation

/// Server-rendered SVG charts: no script, no network, readable in any browser or saved report.
/// Every text that reaches the markup goes through `escape`, so labels from events cannot inject markup.
/// Each data point carries a `<title>`: hovering it shows its numbers and a short insight.

/// Escapes text for HTML and SVG content and attribute values.
public func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for c in text.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default:
            if c.value < 0x20 && c != "\n" && c != "\t" { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
        }
    }
    return out
}

/// A palette that stays distinguishable in print and for common colour-vision deficiencies (Okabe-Ito).
public let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

/// Formats a number for axes and tooltips: 1234567 → "1.23M", 0.0532 → "0.0532".
public func compact(_ v: Double) -> String {
    let a = abs(v)
    if a >= 1e9 { return trim(v / 1e9) + "B" }
    if a >= 1e6 { return trim(v / 1e6) + "M" }
    if a >= 1e4 { return trim(v / 1e3) + "k" }
    if a >= 100 || v == v.rounded() { return String(Int(v.rounded())) }
    return trim(v)
}

private func trim(_ v: Double) -> String {
    var s = String(format: abs(v) >= 10 ? "%.1f" : (abs(v) >= 1 ? "%.2f" : "%.3g"), v)
    if s.contains(".") && !s.contains("e") {
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
    }
    return s
}

/// "Nice" axis ticks covering lo...hi.
func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let raw = (hi - lo) / Double(count)
    let mag = pow10(floor(log10(raw)))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
    var t = (lo / step).rounded(.down) * step
    var out: [Double] = []
    while t <= hi + step * 1e-9 && out.count < 50 {
        out.append(t)
        t += step
    }
    return out
}

private func pow10(_ x: Double) -> Double { pow(10, x) }
private func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

/// One line (or one bar stack layer) of a chart.
public struct Series: Sendable {
    public var name: String
    public var values: [Double?]
    /// Optional per-point insight appended to the point's tooltip.
    public var notes: [String]?
    public var color: String?
    public init(name: String, values: [Double?], notes: [String]? = nil, color: String? = nil) {
        self.name = name
        self.values = values
        self.notes = notes
        self.color = color
    }
}

public struct ChartStyle: Sendable {
    public var width = 640.0
    public var height = 260.0
    public var yFormat: @Sendable (Double) -> String = compact
    public var yLabel = ""
    public var yMin: Double? = 0
    public init(width: Double = 640, height: Double = 260, yLabel: String = "", yMin: Double? = 0,
                yFormat: @escaping @Sendable (Double) -> String = compact) {
        self.width = width
        self.height = height
        self.yLabel = yLabel
        self.yMin = yMin
        self.yFormat = yFormat
    }
}

/// Approximate width of text in the charts' 11 px system font (average glyph 6.2 px; wide enough for digits
/// and lower case).
func textWidth(_ s: String) -> Double { Double(s.count) * 6.2 }

/// How category labels under the x axis are drawn: level when they fit their slot, else turned upright (read
/// from below, each in a column no wider than a line of text, so neighbours never touch) and shortened past
/// 22 characters, the whole label staying in its tooltip.
struct XLabels {
    static let angle = 90.0
    static let maxRotatedChars = 22
    let rotated: Bool
    /// Extra space below the axis that rotated labels take.
    let extraBottom: Double

    init(_ labels: [String], slot: Double) {
        let widest = labels.map(textWidth).max() ?? 0
        rotated = widest > slot * 0.92 && labels.count > 1
        if rotated {
            let w = min(widest, textWidth(String(repeating: "x", count: Self.maxRotatedChars + 1)))
            extraBottom = (w * sin(Self.angle * .pi / 180)).rounded(.up)
        } else {
            extraBottom = 0
        }
    }

    static func shortened(_ s: String) -> String { s.count > maxRotatedChars ? String(s.prefix(maxRotatedChars - 1)) + "…" : s }
}

private struct Frame {
    let right = 12.0, top = 26.0
    /// Room for the widest y tick label.
    var left = 58.0
    let width: Double, height: Double
    var legendRows = 1
    var xLabelRoom = 0.0
    var bottom: Double { 40 + Double(legendRows - 1) * 14 + xLabelRoom }
    let lo: Double, hi: Double
    var plotW: Double { width - left - right }
    var plotH: Double { height - top - bottom }
    func y(_ v: Double) -> Double { top + plotH * (1 - (v - lo) / (hi - lo)) }
}

/// Legend items laid out in rows that fit the width: (x, row) per series.
private func legendLayout(_ series: [Series], width: Double) -> [(Double, Int)] {
    guard series.count > 1 else { return [] }
    var out: [(Double, Int)] = [], x = 58.0, row = 0
    for s in series {
        let w = 24 + Double(s.name.count) * 6.2
        if x + w > width - 12 && x > 58 { x = 58; row += 1 }
        out.append((x, row))
        x += w
    }
    return out
}

private func legendRows(_ series: [Series], width: Double) -> Int { (legendLayout(series, width: width).map(\.1).max() ?? 0) + 1 }

private func open(_ s: ChartStyle, kind: String, title: String) -> String {
    "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart \(kind)\" role=\"img\" aria-label=\"\(escape(title))\" viewBox=\"0 0 \(Int(s.width)) \(Int(s.height))\" width=\"\(Int(s.width))\" height=\"\(Int(s.height))\" font-family=\"system-ui,sans-serif\" font-size=\"11\">"
}

private func axes(_ f: Frame, _ s: ChartStyle, labels: [String], x: (Int) -> Double) -> String {
    var out = ""
    for t in ticks(f.lo, f.hi) {
        let y = f.y(t)
        out += "<line x1=\"\(fmt(f.left))\" x2=\"\(fmt(f.width - f.right))\" y1=\"\(fmt(y))\" y2=\"\(fmt(y))\" stroke=\"#e5e5e5\"/>"
        out += "<text class=\"ylabel\" x=\"\(fmt(f.left - 6))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\" fill=\"#555\">\(escape(s.yFormat(t)))</text>"
    }
    let every = max(1, Int((Double(labels.count) / (f.plotW / 70)).rounded(.up)))
    let slot = f.plotW / Double(max(labels.count, 1)) * Double(every)
    let layout = XLabels(labels.enumerated().filter { $0.offset % every == 0 }.map(\.element), slot: slot)
    let baseline = f.top + f.plotH + 16
    for (i, l) in labels.enumerated() where i % every == 0 {
        if layout.rotated {
            let (lx, ly) = (x(i) + 4, baseline - 8)
            out += "<text class=\"xlabel\" x=\"\(fmt(lx))\" y=\"\(fmt(ly))\" text-anchor=\"end\" fill=\"#555\" transform=\"rotate(-\(Int(XLabels.angle)) \(fmt(lx)) \(fmt(ly)))\"><title>\(escape(l))</title>\(escape(XLabels.shortened(l)))</text>"
        } else {
            out += "<text class=\"xlabel\" x=\"\(fmt(x(i)))\" y=\"\(fmt(baseline))\" text-anchor=\"middle\" fill=\"#555\">\(escape(l))</text>"
        }
    }
    out += "<line x1=\"\(fmt(f.left))\" x2=\"\(fmt(f.width - f.right))\" y1=\"\(fmt(f.top + f.plotH))\" y2=\"\(fmt(f.top + f.plotH))\" stroke=\"#999\"/>"
    if !s.yLabel.isEmpty {
        out += "<text x=\"\(fmt(f.left))\" y=\"14\" fill=\"#333\">\(escape(s.yLabel))</text>"
    }
    return out
}

/// A frame whose left margin fits the widest y tick label and whose bottom fits the x labels (turned when they
/// do not fit their slots); the chart grows by what the labels take, so the plot keeps its height.
private func frame(_ style: inout ChartStyle, rows: Int, lo: Double, hi: Double, labels: [String], slots: Int) -> Frame {
    let widestY = ticks(lo, hi).map { textWidth(style.yFormat($0)) }.max() ?? 0
    let left = max(40, (widestY + 12).rounded(.up))
    let plotW = style.width - left - 12
    let every = max(1, Int((Double(labels.count) / (plotW / 70)).rounded(.up)))
    let layout = XLabels(labels.enumerated().filter { $0.offset % every == 0 }.map(\.element), slot: plotW / Double(max(slots, 1)) * Double(every))
    style.height += layout.extraBottom
    var f = Frame(left: left, width: style.width, height: style.height, legendRows: rows, lo: lo, hi: hi)
    f.xLabelRoom = layout.extraBottom
    return f
}

private func legend(_ series: [Series], _ f: Frame) -> String {
    var out = ""
    let layout = legendLayout(series, width: f.width)
    for (i, s) in series.enumerated() where i < layout.count {
        let c = s.color ?? palette[i % palette.count]
        let (x, row) = layout[i]
        let y = f.height - 14 - Double(f.legendRows - 1 - row) * 14
        out += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"10\" height=\"10\" fill=\"\(c)\"/>"
        out += "<text x=\"\(fmt(x + 14))\" y=\"\(fmt(y + 9))\" fill=\"#333\">\(escape(s.name))</text>"
    }
    return out
}

/// The value range an axis covers: `yMin` (or the smallest value) up to the largest, widened to whole ticks.
private func range(_ values: [Double], yMin: Double?) -> (Double, Double) {
    let lo = yMin ?? values.min() ?? 0
    var hi = values.max() ?? 1
    if hi <= lo { hi = lo + 1 }
    let t = ticks(lo, hi)
    return (min(lo, t.first ?? lo), max(hi, t.last ?? hi))
}

/// A line chart over shared x labels (months, seconds …). Missing values break the line.
public func lineChart(title: String, labels: [String], series: [Series], style: ChartStyle = ChartStyle()) -> String {
    var style = style
    let rows = legendRows(series, width: style.width)
    style.height += Double(rows - 1) * 14
    let all = series.flatMap { $0.values.compactMap { $0 } }
    let (lo, hi) = range(all, yMin: style.yMin)
    let n = max(labels.count, 1)
    let f = frame(&style, rows: rows, lo: lo, hi: hi, labels: labels, slots: max(n - 1, 1))
    func x(_ i: Int) -> Double { n == 1 ? f.left + f.plotW / 2 : f.left + f.plotW * Double(i) / Double(n - 1) }
    var out = open(style, kind: "line", title: title) + "<title>\(escape(title))</title>" + axes(f, style, labels: labels, x: x)
    for (si, s) in series.enumerated() {
        let c = s.color ?? palette[si % palette.count]
        var path = "", pen = false
        for (i, v) in s.values.enumerated() {
            guard let v, i < n else { pen = false; continue }
            path += "\(pen ? "L" : "M")\(fmt(x(i))),\(fmt(f.y(v)))"
            pen = true
        }
        out += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>"
        for (i, v) in s.values.enumerated() {
            guard let v, i < n else { continue }
            let note = s.notes.flatMap { i < $0.count ? $0[i] : nil }.map { " — " + $0 } ?? ""
            out += "<circle class=\"point\" cx=\"\(fmt(x(i)))\" cy=\"\(fmt(f.y(v)))\" r=\"3.5\" fill=\"\(c)\"><title>\(escape("\(s.name), \(i < labels.count ? labels[i] : ""): \(style.yFormat(v))\(note)"))</title></circle>"
        }
    }
    return out + legend(series, f) + "</svg>"
}

/// Bars per label; several series are stacked (`stacked`) or side by side.
public func barChart(title: String, labels: [String], series: [Series], stacked: Bool = false,
                     style: ChartStyle = ChartStyle()) -> String {
    var style = style
    let rows = legendRows(series, width: style.width)
    style.height += Double(rows - 1) * 14
    let n = max(labels.count, 1)
    var totals: [Double] = []
    if stacked {
        for i in 0..<n {
            var pos = 0.0, neg = 0.0
            for s in series { if i < s.values.count, let v = s.values[i] { if v >= 0 { pos += v } else { neg += v } } }
            totals += [pos, neg]
        }
    } else {
        totals = series.flatMap { $0.values.compactMap { $0 } }
    }
    let (lo, hi) = range(totals + [0], yMin: min(0, totals.min() ?? 0))
    let f = frame(&style, rows: rows, lo: lo, hi: hi, labels: labels, slots: n)
    let slot = f.plotW / Double(n)
    func x(_ i: Int) -> Double { f.left + slot * (Double(i) + 0.5) }
    var out = open(style, kind: "bar", title: title) + "<title>\(escape(title))</title>" + axes(f, style, labels: labels, x: x)
    let barW = stacked || series.count <= 1 ? slot * 0.7 : slot * 0.8 / Double(series.count)
    for i in 0..<n {
        var pos = 0.0, neg = 0.0
        for (si, s) in series.enumerated() {
            guard i < s.values.count, let v = s.values[i] else { continue }
            let c = s.color ?? palette[si % palette.count]
            let base: Double
            let bx: Double
            if stacked {
                base = v >= 0 ? pos : neg
                if v >= 0 { pos += v } else { neg += v }
                bx = x(i) - barW / 2
            } else {
                base = 0
                bx = x(i) - slot * 0.4 + barW * Double(si) + (series.count <= 1 ? slot * 0.05 : 0)
            }
            let y1 = f.y(base + v), y0 = f.y(base)
            let note = s.notes.flatMap { i < $0.count ? $0[i] : nil }.map { " — " + $0 } ?? ""
            out += "<rect class=\"bar\" x=\"\(fmt(bx))\" y=\"\(fmt(min(y0, y1)))\" width=\"\(fmt(barW))\" height=\"\(fmt(max(abs(y0 - y1), 0.5)))\" fill=\"\(c)\"><title>\(escape("\(s.name), \(i < labels.count ? labels[i] : ""): \(style.yFormat(v))\(note)"))</title></rect>"
        }
    }
    return out + legend(series, f) + "</svg>"
}

/// A waterfall: a start value, signed steps, and the resulting end value.
public func waterfallChart(title: String, start: (String, Double), steps: [(String, Double)], endLabel: String,
                           style: ChartStyle = ChartStyle()) -> String {
    var levels = [start.1]
    var running = start.1
    for s in steps { running += s.1; levels.append(running) }
    let (lo, hi) = range(levels + [0], yMin: min(0, levels.min() ?? 0))
    let labels = [start.0] + steps.map(\.0) + [endLabel]
    var style = style
    let f = frame(&style, rows: 1, lo: lo, hi: hi, labels: labels, slots: labels.count)
    let slot = f.plotW / Double(labels.count)
    func x(_ i: Int) -> Double { f.left + slot * (Double(i) + 0.5) }
    var out = open(style, kind: "waterfall", title: title) + "<title>\(escape(title))</title>" + axes(f, style, labels: labels, x: x)
    func bar(_ i: Int, _ from: Double, _ to: Double, _ color: String, _ tip: String) {
        let y0 = f.y(from), y1 = f.y(to)
        out += "<rect class=\"bar\" x=\"\(fmt(x(i) - slot * 0.35))\" y=\"\(fmt(min(y0, y1)))\" width=\"\(fmt(slot * 0.7))\" height=\"\(fmt(max(abs(y0 - y1), 0.5)))\" fill=\"\(color)\"><title>\(escape(tip))</title></rect>"
    }
    bar(0, 0, start.1, "#777", "\(start.0): \(style.yFormat(start.1))")
    running = start.1
    for (i, s) in steps.enumerated() {
        bar(i + 1, running, running + s.1, s.1 >= 0 ? "#009E73" : "#D55E00", "\(s.0): \(s.1 >= 0 ? "+" : "")\(style.yFormat(s.1))")
        running += s.1
    }
    bar(labels.count - 1, 0, running, "#0072B2", "\(endLabel): \(style.yFormat(running))")
    return out + "</svg>"
}
