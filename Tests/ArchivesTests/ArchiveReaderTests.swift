import Archives
import Events
import Foundation
import Testing
import TestSupport

/// Archives read in blocks give every line once, whole and in order, wherever the blocks cut them.
@Suite struct ArchiveReaderTests {
    func write(_ records: [ArchiveRecord], gzip: Bool, trailingNewline: Bool = true) throws -> String {
        let path = tempDir().appendingPathComponent(gzip ? "a.ndjson.gz" : "a.ndjson").path
        let writer = try ArchiveWriter(path: path)
        for r in records { try writer.write(r) }
        try writer.close()
        if !trailingNewline && !gzip {
            var data = try Data(contentsOf: URL(fileURLWithPath: path))
            data.removeLast()
            try data.write(to: URL(fileURLWithPath: path))
        }
        return path
    }

    var records: [ArchiveRecord] {
        history.prefix(3000).map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
    }

    @Test(arguments: [(false, 7), (false, 300), (true, 64), (true, 1 << 20)])
    func blocksOfAnySizeGiveEveryLineOnce(gzip: Bool, size: Int) throws {
        let expected = records
        let path = try write(expected, gzip: gzip)
        var blocks = try ArchiveReader(path: path).blocks(bytes: size)
        var got: [ArchiveRecord] = []
        var nextLine = 1
        while let block = blocks.next() {
            let b = try block.get()
            #expect(b.firstLineNumber == nextLine)
            nextLine += b.lines.count
            for line in b.lines where !line.isEmpty { got.append(try ArchiveRecord.parse(line: b.bytes[line]).get()) }
        }
        #expect(got == expected)
        // The record-by-record reader agrees.
        #expect(try ArchiveReader(path: path).map { try $0.get() } == expected)
    }

    @Test func aLastLineWithoutItsNewlineIsRead() throws {
        let expected = Array(records.prefix(10))
        let path = try write(expected, gzip: false, trailingNewline: false)
        #expect(try ArchiveReader(path: path).map { try $0.get() } == expected)
    }

    @Test func linesParsedIntoOneBufferEqualTheirRecords() throws {
        var buffer: [UInt8] = []
        for r in records.prefix(500) {
            var line: [UInt8] = []
            r.appendLine(to: &line)
            let l = try ArchiveRecord.parse(line: line.dropLast(), into: &buffer).get()
            #expect(Array(buffer[l.value]) == r.value && l.key.map { Array(buffer[$0]) } == r.key && l.topic == r.topic)
            #expect(l.timestampMs == r.timestamp?.ms)
        }
        // A line that fails leaves the buffer as it was.
        let before = buffer.count
        #expect(throws: ArchiveLineError.self) { try ArchiveRecord.parse(line: Array(#"{"topic":"billing","value":"abc"#.utf8)[...], into: &buffer).get() }
        #expect(buffer.count == before)
    }
}

/// A gzip archive cut off mid-stream is never taken for a whole one.
@Suite struct TruncatedArchiveTests {
    static func cutArchive(keeping fraction: Double) throws -> (path: String, records: [ArchiveRecord]) {
        let records = history.prefix(3000).map { ArchiveRecord(event: $0, value: EventEncoder.encode($0)) }
        let path = tempDir().appendingPathComponent("cut.ndjson.gz").path
        let writer = try ArchiveWriter(path: path)
        for r in records { try writer.write(r) }
        try writer.close()
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path))
        return (path, Array(records))
    }

    @Test(arguments: [0.3, 0.75, 0.999])
    func aCutOffArchiveEndsWithAnErrorNamingTheLastCompleteLine(fraction: Double) throws {
        let (path, records) = try Self.cutArchive(keeping: fraction)
        var read: [ArchiveRecord] = []
        var failure: ArchiveError?
        for item in try ArchiveReader(path: path) {
            switch item {
            case let .success(r): read.append(r)
            case let .failure(e): failure = e
            }
        }
        let error = try #require(failure, "no error for an archive cut at \(fraction)")
        #expect(error.truncated)
        #expect(error.description.contains(path) && error.description.contains("after line \(read.count),"), "\(error)")
        // Every line before the cut is read whole, and the cut-off line is not taken for a record.
        #expect(!read.isEmpty && read.count < records.count)
        #expect(read == Array(records.prefix(read.count)))
    }

    @Test func allowTruncatedReadsTheCompleteLinesWithoutAnError() throws {
        let (path, records) = try Self.cutArchive(keeping: 0.5)
        var reader = try ArchiveReader(path: path)
        reader.allowTruncated = true
        let read = try reader.map { try $0.get() }
        #expect(!read.isEmpty && read == Array(records.prefix(read.count)))
        var blocks = reader.blocks()
        while let b = blocks.next() { _ = try b.get() }
        #expect(blocks.truncated)
    }

    @Test func aWholeArchiveIsNotTruncated() throws {
        let (path, records) = try Self.cutArchive(keeping: 1.0)
        var blocks = try ArchiveReader(path: path).blocks()
        while let b = blocks.next() { _ = try b.get() }
        #expect(!blocks.truncated)
        #expect(try ArchiveReader(path: path).map { try $0.get() } == records)
    }
}
