import Foundation

/// Batch size and batch duration over a job's batches, as an inline SVG: two lines on their own
/// axes (rows on the left, milliseconds on the right, batch numbers below), failed batches as
/// red marks on the axis, batches that made others wait on their locks as dots, and a legend.
struct BatchChart {
    var batches: [BatchRow]

    static let width = 900.0
    static let height = 280.0
    static let left = 62.0
    static let right = 62.0
    static let top = 34.0
    static let bottom = 30.0

    /// Three to five round values from 0 up to at least `maximum`: 0, 250, 500 for 480.
    static func ticks(_ maximum: Double) -> [Double] {
        let maximum = max(maximum, 1)
        let raw = maximum / 4
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        let top = ceil(maximum / step) * step
        return stride(from: 0, through: top + step / 2, by: step).map { $0 }
    }

    /// A tick's label: `1.5k`, `2M`, `250`.
    static func label(_ value: Double) -> String {
        func trimmed(_ v: Double) -> String {
            v == v.rounded()
                ? String(Int(v)) : (v * 10).rounded() == v * 10 ? String(format: "%.1f", v) : String(format: "%.2f", v)
        }
        if value >= 1_000_000 { return trimmed(value / 1_000_000) + "M" }
        if value >= 1000 { return trimmed(value / 1000) + "k" }
        return trimmed(value)
    }

    var svg: String {
        let (width, height, left, right, top, bottom) = (
            Self.width, Self.height, Self.left, Self.right, Self.top, Self.bottom
        )
        let plotW = width - left - right
        let plotH = height - top - bottom
        let maxSize = Double(batches.map(\.batchSize).max() ?? 1)
        let maxMS = max(batches.map(\.durationMS).max() ?? 1, 1)
        let sizeTicks = Self.ticks(maxSize)
        let msTicks = Self.ticks(maxMS)
        let sizeTop = sizeTicks.last ?? maxSize
        let msTop = msTicks.last ?? maxMS
        let n = max(batches.count - 1, 1)
        func x(_ i: Int) -> Double { left + plotW * Double(i) / Double(n) }
        func y(_ value: Double, _ axisTop: Double) -> Double { top + plotH * (1 - value / max(axisTop, 1)) }
        func path(_ value: (BatchRow) -> Double, _ axisTop: Double) -> String {
            batches.enumerated().map { i, b in
                (i == 0 ? "M" : "L") + String(format: "%.1f,%.1f", x(i), y(value(b), axisTop))
            }.joined(separator: " ")
        }
        // Gridlines at the size axis's ticks, labelled on the left; the duration axis's ticks
        // are spaced as evenly when both have as many, else on their own.
        let grid = sizeTicks.map { tick in
            let ty = y(tick, sizeTop)
            return String(
                format: "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", left, ty,
                width - right, ty)
                + String(
                    format: "<text class=\"axis left\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, ty + 4)
                + "\(Self.label(tick))</text>"
        }.joined()
        let msAxis = msTicks.map { tick in
            String(format: "<text class=\"axis right\" x=\"%.1f\" y=\"%.1f\">", width - right + 6, y(tick, msTop) + 4)
                + "\(Self.label(tick)) ms</text>"
        }.joined()
        // Batch numbers below: the first, the last and up to four between.
        let count = batches.count
        let marks =
            count <= 1 ? [0] : Array(Set((0...5).map { Int((Double($0) * Double(count - 1) / 5).rounded()) })).sorted()
        let xAxis = marks.filter { $0 < count }.map { i in
            let anchor = i == 0 && count > 1 ? "start" : i == count - 1 && count > 1 ? "end" : "middle"
            return String(format: "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\"", x(i), height - 10)
                + " text-anchor=\"\(anchor)\">\(batches[i].seq)</text>"
        }.joined()
        let failures = batches.enumerated().filter { $0.element.error != nil }.map {
            String(
                format:
                    "<rect class=\"fail\" x=\"%.1f\" y=\"%.1f\" width=\"3\" height=\"8\"><title>batch %lld failed</title></rect>",
                x($0.offset) - 1.5, top + plotH - 8, $0.element.seq)
        }.joined()
        // A batch that made sessions wait on its locks is a dot: as high as its longest wait
        // against the longest of all, as wide as how many waited.
        let maxWait = batches.map(\.lockWaitMS).max() ?? 0
        let waits = batches.enumerated().filter { $0.element.lockWaiters > 0 }.map {
            let b = $0.element
            let r = min(2.5 + Double(b.lockWaiters), 7)
            return String(
                format:
                    "<circle class=\"wait\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"><title>batch %lld made %ld waiting, longest %.0f ms</title></circle>",
                x($0.offset), y(b.lockWaitMS, maxWait), r, b.seq, b.lockWaiters, b.lockWaitMS)
        }.joined()
        var legend = [
            "<g class=\"legend\" transform=\"translate(\(Int(left)),14)\">",
            "<line class=\"size\" x1=\"0\" y1=\"-4\" x2=\"18\" y2=\"-4\"/><text x=\"24\" y=\"0\">batch size, rows (max \(Int(maxSize)))</text>",
            "<line class=\"dur\" x1=\"230\" y1=\"-4\" x2=\"248\" y2=\"-4\"/><text x=\"254\" y=\"0\">duration (max \(String(format: "%.0f", maxMS)) ms)</text>",
        ]
        var offset = 450
        if !failures.isEmpty {
            legend.append(
                "<rect class=\"fail\" x=\"\(offset)\" y=\"-9\" width=\"3\" height=\"8\"/><text x=\"\(offset + 9)\" y=\"0\">failed batch</text>"
            )
            offset += 100
        }
        if !waits.isEmpty {
            legend.append(
                "<circle class=\"wait key\" cx=\"\(offset + 4)\" cy=\"-4\" r=\"4\"/><text class=\"waitlabel\" x=\"\(offset + 13)\" y=\"0\">lock waits caused (longest \(String(format: "%.0f", maxWait)) ms)</text>"
            )
        }
        legend.append("</g>")
        return """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="Batch size, duration and lock waits caused over the last \(batches.count) batches">
            \(legend.joined())\(grid)\(msAxis)\(xAxis)
            <text class="axis" x="\(Int(left - 6))" y="\(Int(height - 10))" text-anchor="end">batch</text>
            <path class="size" d="\(path({ Double($0.batchSize) }, sizeTop))"><title>batch size (rows)</title></path>
            <path class="dur" d="\(path({ $0.durationMS }, msTop))"><title>duration (ms)</title></path>\(failures)\(waits)
            </svg>
            """
    }
}
