@testable import Events
import Foundation
import Testing

@Suite struct ArchiveLineTests {
    /// Any record written as a line parses back to itself: random keys, headers and values, including
    /// escapes, control characters, astral-plane characters and bytes that are not UTF-8.
    @Test func writtenLinesParseBackToTheSameRecord() throws {
        var rng = SystemRandomNumberGenerator()
        let pieces = ["a", "\"", "\\", "/", "\n", "\u{01}", "é", "😀", "<script>", " ", "\u{2028}", "{", "}", ":", ","]
        func text() -> String { (0..<Int.random(in: 0...12, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined() }
        for _ in 0..<500 {
            let binary = Bool.random(using: &rng)
            let value: [UInt8] = binary ? (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) } + [0xFF]
                                        : Array(text().utf8)
            let headers = (0..<Int.random(in: 0...3, using: &rng)).map { i in ("h\(i)" + text(), text()) }.sorted { $0.0 < $1.0 }
            let r = ArchiveRecord(topic: "payments" + text(), partition: Bool.random() ? Int32.random(in: 0...1000) : nil,
                                  offset: Bool.random() ? Int64.random(in: 0...Int64.max) : nil,
                                  key: Bool.random() ? Array(text().utf8) : nil,
                                  timestamp: Bool.random() ? Timestamp(ms: Int64.random(in: 946_684_800_000...4_102_444_799_999)) : nil,
                                  headers: headers, value: value)
            var line: [UInt8] = []
            r.appendLine(to: &line)
            let parsed = try ArchiveRecord.parse(line: line.dropLast()).get()
            #expect(parsed == r)
        }
    }

    /// The reading of the writer's own layout (`LineParser.canonicalRecord`) gives what the general parser gives,
    /// or declines: on written lines and on lines with a byte inserted, removed or replaced anywhere.
    @Test func theWritersLayoutIsReadExactlyAsTheGeneralParserReadsIt() {
        var rng = SplitMix64(seed: 7)
        let pieces = ["a", "cus_00042", "\"", "\\", "\n", "\u{01}", "é", "😀", " ", "{", "}", ":", ","]
        func text() -> String { (0..<Int.random(in: 0...6, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined() }
        let interesting = Array(#" "\{}:,0-9au"#.utf8) + [0x0A, 0x01, 0xC3]
        var read = 0, declined = 0
        for n in 0..<4000 {
            let value = Array(#"{"schema":1,"event_id":""#.utf8) + Array(text().utf8) + Array(#"","amount_cents":1200}"#.utf8)
            let r = ArchiveRecord(topic: Bool.random(using: &rng) ? "payments" : "billing" + text(),
                                  partition: Bool.random(using: &rng) ? Int32.random(in: 0...1000, using: &rng) : nil,
                                  offset: Bool.random(using: &rng) ? Int64.random(in: 0...Int64.max, using: &rng) : nil,
                                  key: Bool.random(using: &rng) ? Array(text().utf8) : nil,
                                  timestamp: Bool.random(using: &rng) ? Timestamp(ms: Int64.random(in: 946_684_800_000...4_102_444_799_999, using: &rng)) : nil,
                                  headers: n % 10 == 0 ? [("event-type", "payment.failed")] : [], value: value)
            var line: [UInt8] = []
            r.appendLine(to: &line)
            line.removeLast()  // the newline
            if n % 2 == 1 {  // one byte inserted, removed or replaced
                let at = Int.random(in: 0..<line.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: line.insert(interesting.randomElement(using: &rng)!, at: at)
                case 1: line.remove(at: at)
                default: line[at] = interesting.randomElement(using: &rng)!
                }
            }
            var fastOut: [UInt8] = [9], generalOut: [UInt8] = [9]
            let fastParser = LineParser(bytes: line[...])
            var generalParser = LineParser(bytes: line[...])
            let fast = fastParser.canonicalRecord(appendingTo: &fastOut)
            let general = try? generalParser.record(into: &generalOut)
            guard let fast else {
                declined += 1
                continue
            }
            read += 1
            guard let general else {
                Issue.record("read a line the general parser rejects: \(String(decoding: line, as: UTF8.self))")
                continue
            }
            #expect(fast.topic == general.topic && fast.partition == general.partition && fast.offset == general.offset
                && fast.timestampMs == general.timestampMs && general.headers.isEmpty
                && fast.key.map { fastOut[$0] } == general.key.map { generalOut[$0] } && fastOut[fast.value] == generalOut[general.value],
                "\(String(decoding: line, as: UTF8.self))")
        }
        // Both paths were taken often: the written lines without headers or escapes are read, the rest declined.
        #expect(read > 400 && declined > 1000, "read \(read), declined \(declined)")
    }

    /// Lines of both layouts parsed one after another into one buffer made once (`parse(line:into:at:)`, as the
    /// archive driver reads a block): each record's key and value are where its ranges say, the same as parsing the
    /// line alone, and nothing is written past the room the lines were given.
    @Test func linesParsedIntoOneBufferMadeOnceReadAsEachAlone() throws {
        var rng = SplitMix64(seed: 11)
        let pieces = ["a", "cus_00042", "\"", "\\", "\n", "é", "😀", " ", "{", "}"]
        func text() -> String { (0..<Int.random(in: 0...8, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined() }
        var records: [ArchiveRecord] = [], lines: [[UInt8]] = []
        for n in 0..<300 {
            let r = ArchiveRecord(topic: "payments", partition: n % 3 == 0 ? Int32(n) : nil, offset: Int64(n),
                                  key: n % 4 == 0 ? nil : Array(text().utf8), timestamp: Timestamp(ms: 1_700_000_000_000 + Int64(n)),
                                  headers: n % 5 == 0 ? [("event-type", text())] : [],  // with headers: the general parser
                                  value: Array(("{\"note\":\"" + text() + "\"}").utf8))
            var line: [UInt8] = []
            r.appendLine(to: &line)
            records.append(r)
            lines.append(Array(line.dropLast()))
        }
        let room = lines.reduce(0) { $0 + $1.count + 1 } + ArchiveRecord.wordSlack
        var out = [UInt8](repeating: 0, count: room + 64)
        var w = 0
        for (r, line) in zip(records, lines) {
            let l = try ArchiveRecord.parse(line: line[...], into: &out, at: &w).get()
            #expect(l.key.map { Array(out[$0]) } == r.key && Array(out[l.value]) == r.value && l.topic == r.topic
                    && l.partition == r.partition && l.offset == r.offset && l.timestampMs == r.timestamp?.ms
                    && l.headers.map(\.0) == r.headers.map(\.0) && l.headers.map(\.1) == r.headers.map(\.1))
        }
        #expect(records.contains { !$0.headers.isEmpty } && records.contains { $0.headers.isEmpty }, "both layouts")
        #expect(out[room...].allSatisfy { $0 == 0 }, "written past the room")
    }

    @Test func otherWritersFieldOrderWhitespaceAndUnknownFieldsAreAccepted() throws {
        let line = #"  { "value" : "{\"a\":1}", "extra": [1, {"x": null}, true], "key":null, "topic":"billing", "offset": 7 }  "#
        let r = try ArchiveRecord.parse(line: Array(line.utf8)[...]).get()
        #expect(r.topic == "billing" && r.offset == 7 && r.key == nil && r.value == Array(#"{"a":1}"#.utf8))
        // Python's json.dumps writes non-ASCII as \u escapes (surrogate pairs above the BMP), between long plain runs.
        let escaped = #"{"topic":"billing","value":"plain text of 24 bytes \u00e9\ud83d\ude00 and\tmore plain text\/"}"#
        let e = try ArchiveRecord.parse(line: Array(escaped.utf8)[...]).get()
        #expect(e.value == Array("plain text of 24 bytes é😀 and\tmore plain text/".utf8))
    }

    @Test(arguments: [
        "", "[]", "{}", #"{"topic":"billing"}"#, #"{"topic":"billing","value":"x""#, #"{"topic":"billing","value":"x"} trailing"#,
        #"{"topic":"billing","value":"\q"}"#, #"{"topic":"billing","value":"\ud800x"}"#, #"{"topic":"billing","value":"x","partition":99999999999}"#,
        #"{"topic":"billing","value":"x","timestamp":"yesterday"}"#, ##"{"topic":"billing","value_base64":"@@@@"}"##,
        String(repeating: "[", count: 100),
    ])
    func malformedLinesAreRejectedWithAReason(_ line: String) {
        guard case let .failure(e) = ArchiveRecord.parse(line: Array(line.utf8)[...]) else {
            Issue.record("accepted: \(line)")
            return
        }
        #expect(!e.description.isEmpty)
    }
}

extension LineParser {
    /// `canonicalRecord(into:at:)` appending to `out` (cut back to what it wrote).
    func canonicalRecord(appendingTo out: inout [UInt8]) -> ArchiveLine? {
        var w = out.count
        out.append(contentsOf: repeatElement(0, count: ArchiveRecord.roomNeeded(bytes)))
        var elements = out.mutableSpan
        var m = elements.mutableBytes
        let l = canonicalRecord(into: &m, at: &w)
        out.removeLast(out.count - w)
        return l
    }
}
