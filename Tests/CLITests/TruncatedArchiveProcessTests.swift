import Archives
import Events
import Foundation
import Testing
import TestSupport

/// `marts-consumer --from-archive` on a gzip archive cut off mid-stream: the complete lines are applied and
/// checkpointed, then it fails naming the file and the last complete line; `--allow-truncated` accepts them.
@Suite struct TruncatedArchiveProcessTests {
    @Test func aCutOffArchiveIsAnErrorUnlessAllowed() throws {
        let dir = tempDir()
        let path = dir.appendingPathComponent("cut.ndjson.gz").path
        let writer = try ArchiveWriter(path: path)
        for e in history.prefix(4000) { try writer.write(ArchiveRecord(event: e, value: EventEncoder.encode(e))) }
        try writer.close()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: path))

        let (status, stderr) = try BadFlagsTests.run("marts-consumer", ["--from-archive", path, "--state-dir", dir.appendingPathComponent("a").path,
                                                                          "--no-alerts", "--log-level", "error"])
        #expect(status == 1, "\(stderr)")
        let line = try #require(stderr.split(separator: "\n").first { $0.contains("error:") })
        #expect(line.contains(path) && line.contains("ends early") && line.contains("last complete line"), "\(line)")
        #expect(!stderr.contains("unterminated"), "the cut-off line was parsed as a record: \(stderr)")

        let (allowed, log) = try BadFlagsTests.run("marts-consumer", ["--from-archive", path, "--state-dir", dir.appendingPathComponent("b").path,
                                                                       "--no-alerts", "--allow-truncated", "--log-level", "warning"])
        #expect(allowed == 0, "\(log)")
        #expect(log.contains("ends early") && log.contains("rejected 0"), "\(log)")
    }
}
