import Foundation

/// The governor's recent choices as a small inline SVG: batch size over a job's newest batches
/// (rows on the left axis, batch numbers below), failed attempts as red marks at the size they
/// tried, batches that made sessions wait on their locks as dots, and the job's min-batch-size
/// and max-batch-size as dashed lines where they fall within the axis. Drawn as `BatchChart` is,
/// with its ticks and labels, so the two charts on a job's page read alike.
struct GovernorChart {
    var batches: [BatchRow]
    var minBatchSize: Int?
    var maxBatchSize: Int?

    static let width = 900.0
    static let height = 120.0
    static let left = 62.0
    static let right = 62.0
    static let top = 24.0
    static let bottom = 24.0

    var svg: String {
        let (width, height, left, right, top, bottom) = (
            Self.width, Self.height, Self.left, Self.right, Self.top, Self.bottom
        )
        let plotW = width - left - right
        let plotH = height - top - bottom
        let maxSize = Double(batches.map(\.batchSize).max() ?? 1)
        let ticks = BatchChart.ticks(maxSize)
        let axisTop = max(ticks.last ?? maxSize, 1)
        let n = max(batches.count - 1, 1)
        func x(_ i: Int) -> Double { left + plotW * Double(i) / Double(n) }
        func y(_ value: Double) -> Double { top + plotH * (1 - value / axisTop) }
        let grid = ticks.map { tick in
            String(
                format: "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", left, y(tick),
                width - right, y(tick))
                + String(
                    format: "<text class=\"axis left\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6,
                    y(tick) + 4)
                + "\(BatchChart.label(tick))</text>"
        }.joined()
        // The bounds the governor keeps to, where the axis reaches them.
        let bounds = [("min", minBatchSize), ("max", maxBatchSize)].compactMap { name, value -> String? in
            guard let value, Double(value) <= axisTop else { return nil }
            return String(
                format: "<line class=\"bound\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\">",
                left, y(Double(value)), width - right, y(Double(value)))
                + "<title>\(name)-batch-size \(value)</title></line>"
                + String(
                    format: "<text class=\"axis bound\" x=\"%.1f\" y=\"%.1f\">", width - right + 6, y(Double(value)) + 4
                )
                + "\(name) \(BatchChart.label(Double(value)))</text>"
        }.joined()
        let line = batches.enumerated().map { i, b in
            (i == 0 ? "M" : "L") + String(format: "%.1f,%.1f", x(i), y(Double(b.batchSize)))
        }.joined(separator: " ")
        let count = batches.count
        let xAxis = (count <= 1 ? [0] : [0, count - 1]).map { i in
            let anchor = count <= 1 ? "middle" : i == 0 ? "start" : "end"
            return String(format: "<text class=\"axis\" x=\"%.1f\" y=\"%.1f\"", x(i), height - 8)
                + " text-anchor=\"\(anchor)\">\(batches[i].seq)</text>"
        }.joined()
        let waits = batches.enumerated().filter { $0.element.lockWaiters > 0 && $0.element.error == nil }.map {
            String(
                format:
                    "<circle class=\"wait mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>batch %lld, %ld rows: made %ld wait, longest %.0f ms</title></circle>",
                x($0.offset), y(Double($0.element.batchSize)), $0.element.seq, $0.element.batchSize,
                $0.element.lockWaiters,
                $0.element.lockWaitMS)
        }.joined()
        let failures = batches.enumerated().filter { $0.element.error != nil }.map {
            String(
                format:
                    "<circle class=\"fail mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>batch %lld failed at %ld rows</title></circle>",
                x($0.offset), y(Double($0.element.batchSize)), $0.element.seq, $0.element.batchSize)
        }.joined()
        var legend = [
            "<g class=\"legend\" transform=\"translate(\(Int(left)),14)\">",
            "<line class=\"size\" x1=\"0\" y1=\"-4\" x2=\"18\" y2=\"-4\"/><text x=\"24\" y=\"0\">batch size, rows, over the last \(count) batches</text>",
        ]
        var offset = 300
        if !failures.isEmpty {
            legend.append(
                "<circle class=\"fail key\" cx=\"\(offset + 4)\" cy=\"-4\" r=\"3.5\"/><text x=\"\(offset + 12)\" y=\"0\">failed attempt</text>"
            )
            offset += 110
        }
        if !waits.isEmpty {
            legend.append(
                "<circle class=\"wait key\" cx=\"\(offset + 4)\" cy=\"-4\" r=\"3\"/><text class=\"waitlabel\" x=\"\(offset + 12)\" y=\"0\">made sessions wait</text>"
            )
        }
        legend.append("</g>")
        return """
            <svg class="chart governor" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="Batch size over the last \(count) batches, failed attempts marked">
            \(legend.joined())\(grid)\(bounds)\(xAxis)
            <path class="size" d="\(line)"><title>batch size (rows)</title></path>\(waits)\(failures)
            </svg>
            """
    }
}
