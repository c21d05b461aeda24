import Foundation
import Testing
import TestSupport

/// A path a command must write and cannot: one line naming the path and the reason in words, exit 2, before any
/// work; never a Foundation error dump.
@Suite struct StartChecksTests {
    @Test func unwritablePathsFailAtOnceNamingThePathAndTheReason() throws {
        let dir = tempDir()
        let missing = dir.appendingPathComponent("missing").path
        let file = dir.appendingPathComponent("a-file").path
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let cases: [(String, [String], String)] = [
            ("marts-consumer", ["--state-dir", "/dev/null/x", "--bootstrap-servers", "127.0.0.1:1"], "cannot use /dev/null/x as the state directory: /dev/null is not a directory"),
            ("marts-consumer", ["--state-dir", file], "cannot use \(file) as the state directory: it is a file, not a directory"),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s").path, "--metrics-file", missing + "/m.prom", "--from-archive", "/dev/null"],
             "cannot write the metrics file \(missing)/m.prom: its directory \(missing) does not exist"),
            ("undercurrent", ["loadtest", "--report", missing + "/lt", "--duration", "30s"],
             "cannot write the load-test report \(missing)/lt.json: its directory \(missing) does not exist"),
            ("undercurrent", ["simulate", "--out", missing + "/a.ndjson", "--customers", "10"], "cannot write the archive \(missing)/a.ndjson: its directory"),
            ("undercurrent", ["marts", "export", "--state-dir", dir.path, "--out", "/dev/null/out"], "cannot use /dev/null/out as the output directory: /dev/null is not a directory"),
            ("undercurrent", ["report", "--state-dir", dir.path, "--out", dir.path], "cannot write the report \(dir.path): it is a directory"),
        ]
        for (product, args, expected) in cases {
            let (status, stderr) = try BadFlagsTests.run(product, args)
            let lines = stderr.split(separator: "\n")
            #expect(status == 2, "\(product) \(args.joined(separator: " ")) exited \(status): \(stderr)")
            #expect(lines.count == 1 && lines[0].contains("error: " + expected), "\(product) \(args.joined(separator: " ")): \(stderr)")
            #expect(!stderr.contains("NSCocoaErrorDomain") && !stderr.contains("Code="))
        }
    }
}
