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
        let path = try writeArchive(Array(history.prefix(4000)), in: dir, named: "cut.ndjson.gz")
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

    /// A consumer of replayed topics (`--topic-prefix replay.`) given the state directory of the consumer of the live
    /// ones: it stops at start (exit 2), says whose the checkpoints are and what to do instead (not `--rebuild`, which
    /// would discard them), and leaves them as they were.
    @Test func anotherConsumersStateDirectoryIsRefusedAndLeftAsItWas() throws {
        let dir = tempDir()
        let path = try writeArchive(Array(history.prefix(3000)), in: dir, named: "history.ndjson")
        let state = dir.appendingPathComponent("live").path
        let (first, log) = try BadFlagsTests.run("marts-consumer", ["--from-archive", path, "--state-dir", state, "--log-level", "error"])
        #expect(first == 0, "\(log)")
        func files() throws -> [String: Data] {
            var out: [String: Data] = [:]
            let root = URL(fileURLWithPath: state)
            for case let url as URL in FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)! where !url.hasDirectoryPath {
                out[url.path] = try Data(contentsOf: url)
            }
            return out
        }
        let before = try files()
        let (status, stderr) = try BadFlagsTests.run("marts-consumer", ["--from-archive", path, "--state-dir", state, "--topic-prefix", "replay.",
                                                                          "--log-level", "error"])
        #expect(status == 2, "\(stderr)")
        let line = try #require(stderr.split(separator: "\n").first { $0.contains("error:") })
        #expect(line.contains("is another consumer's") && line.contains("and this consumer reads replay.billing, replay.engagement, replay.payments")
                && line.hasSuffix("Give this consumer a state directory of its own (--state-dir)."), "\(line)")
        #expect(!stderr.contains("--rebuild"), "\(stderr)")
        #expect(before.keys.contains { $0.hasSuffix("alert-engine.bin") })
        #expect(try files() == before, "the other consumer's state (its alert engine's too) was left as it was")
    }
}
