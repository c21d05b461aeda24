import Foundation
import Testing
import TestSupport

/// The executables carry their defaults: run from a directory outside the checkout, without --config-dir.
@Suite struct BuiltinConfigProcessTests {
    static func run(_ product: String, _ args: [String], in directory: URL, environment: [String: String] = [:]) throws -> (Int32, String) {
        let log = tempDir().appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = try binary(product)
        p.arguments = args
        p.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["UNDERCURRENT_CONFIG_DIR"] = nil
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardError = try FileHandle(forWritingTo: log)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// A long simulation says how far through the simulated time it is and about how long is left, never going
    /// backwards (on a pipe, one line per report).
    @Test func simulateShowsHowFarThroughTheSimulatedTimeItIs() throws {
        let dir = tempDir()
        let (status, stderr) = try Self.run("undercurrent", ["simulate", "--out", "a.ndjson", "--customers", "3000", "--months", "12"], in: dir)
        #expect(status == 0, "\(stderr)")
        let shares = stderr.split(separator: "\n").compactMap { line -> Int? in
            guard line.hasPrefix("simulated "), let r = line.range(of: "% of the simulated time") else { return nil }
            return Int(line[..<r.lowerBound].split(separator: "(").last ?? "")
        }
        #expect(shares.count >= 2, "\(stderr)")
        #expect(zip(shares, shares.dropFirst()).allSatisfy { $0 <= $1 } && shares.allSatisfy { (0...100).contains($0) }, "\(shares)")
        #expect(stderr.contains(" s left; "), "\(stderr)")
        #expect(stderr.split(separator: "\n").last?.hasPrefix("wrote ") == true)
    }

    @Test func simulateAndConsumeOutsideTheCheckoutWithTheBuiltInDefaults() throws {
        let outside = tempDir()
        #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("config").path))
        let (status, stderr) = try Self.run("undercurrent", ["simulate", "--out", "a.ndjson", "--customers", "40", "--months", "3", "--scenario", "payment-incident"], in: outside)
        #expect(status == 0, "\(stderr)")
        let lines = try String(contentsOf: outside.appendingPathComponent("a.ndjson"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 100)
        let (consumed, log) = try Self.run("marts-consumer", ["--from-archive", "a.ndjson", "--state-dir", "state", "--log-level", "error"], in: outside)
        #expect(consumed == 0, "\(log)")
        #expect(log.contains("accepted \(lines.count)"), "\(log)")
        // An override that names a directory without the files is an error, not a silent fallback.
        let (bad, message) = try Self.run("undercurrent", ["simulate", "--out", "b.ndjson", "--customers", "5"], in: outside,
                                          environment: ["UNDERCURRENT_CONFIG_DIR": outside.appendingPathComponent("nowhere").path])
        #expect(bad == 2 && message.contains("UNDERCURRENT_CONFIG_DIR") && message.contains("nowhere"), "\(message)")
    }
}
