import Events
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
