import Foundation
import Testing

/// Runs Prometheus' `promtool` (Debian package `prometheus`) with `input` on its standard input; returns its exit
/// status and what it printed.
public func promtool(_ args: [String], input: String = "") throws -> (status: Int32, output: String) {
    guard let path = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestSetupError("promtool is missing: install Debian's prometheus package (scripts/test.sh does)")
    }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let stdin = Pipe(), out = Pipe()
    p.standardInput = stdin
    p.standardOutput = out
    p.standardError = out
    try p.run()
    try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, output)
}

/// Expects `promtool check metrics` to find no problem (not even a lint warning) in an exposition, which must
/// hold at least one metric.
public func expectPromtoolAccepts(_ exposition: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(exposition.contains("# TYPE "), "no metrics in the exposition", sourceLocation: sourceLocation)
    let (status, output) = try promtool(["check", "metrics"], input: exposition)
    #expect(status == 0 && output.isEmpty, "promtool check metrics: \(output)", sourceLocation: sourceLocation)
}
