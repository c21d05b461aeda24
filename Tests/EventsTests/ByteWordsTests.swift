import Foundation
import Testing

@testable import Events

/// The word-at-a-time paths (string scanning, key lookup) against byte-at-a-time answers.
@Suite struct ByteWordsTests {
    /// The lowest flagged byte of `bytesEqual`/`bytesBelow` is the first byte a plain scan finds.
    @Test func theLowestFlagIsTheFirstMatchingByte() {
        var rng = SplitMix64(seed: 11)
        let interesting: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xFF]
        for _ in 0..<20_000 {
            let bytes = (0..<8).map { _ in rng.next() % 2 == 0 ? interesting[Int(rng.next() % 12)] : UInt8(truncatingIfNeeded: rng.next()) }
            let w = ByteWords.load(bytes.span, 0)
            #expect(w == bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            for target: UInt8 in [0x22, 0x5C] {
                let first = bytes.firstIndex(of: target)
                let flags = ByteWords.bytesEqual(w, target)
                #expect((flags == 0 ? nil : flags.trailingZeroBitCount / 8) == first, "\(bytes) == \(target)")
            }
            let firstControl = bytes.firstIndex { $0 < 0x20 }
            let flags = ByteWords.bytesBelow(w, 0x20)
            #expect((flags == 0 ? nil : flags.trailingZeroBitCount / 8) == firstControl, "\(bytes) < 0x20")
        }
    }

    /// The whole-word character-class tests against byte-by-byte answers, on words rich in boundary bytes.
    @Test func characterClassWordsMatchByteChecks() {
        var rng = SplitMix64(seed: 31)
        let edges: [UInt8] = [0x00, 0x1F, 0x20, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x39, 0x3A, 0x3B, 0x40, 0x41, 0x5A, 0x5B,
                              0x5E, 0x5F, 0x60, 0x61, 0x7A, 0x7B, 0x7E, 0x7F, 0x80, 0xC2, 0xFF]
        func isIdentifier(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D || c == 0x2E || c == 0x3A
        }
        var identifiers = 0
        for round in 0..<100_000 {
            // Mostly identifier bytes with one or two others, so that every position and neighbour is tried.
            var bytes = (0..<8).map { _ in UInt8(0x61 + rng.next() % 26) }
            for _ in 0..<Int(rng.next() % 3) { bytes[Int(rng.next() % 8)] = round % 2 == 0 ? edges[Int(rng.next() % UInt64(edges.count))] : UInt8(truncatingIfNeeded: rng.next()) }
            let w = ByteWords.load(bytes.span, 0)
            #expect(ByteWords.allIdentifierBytes(w) == bytes.allSatisfy(isIdentifier), "\(bytes)")
            #expect(ByteWords.hasASCIIControl(w) == bytes.contains { $0 < 0x20 || $0 == 0x7F }, "\(bytes)")
            if bytes.allSatisfy(isIdentifier) { identifiers += 1 }
            guard w & ByteWords.highs == 0 else { continue }
            for bound: UInt8 in [0x01, 0x2D, 0x3B, 0x41, 0x5B, 0x61, 0x7B, 0x80] {
                let flags = ByteWords.asciiAtLeast(w, bound)
                #expect((0..<8).allSatisfy { (flags >> (8 * UInt64($0) + 7)) & 1 == (bytes[$0] >= bound ? 1 : 0) }, "\(bytes) >= \(bound)")
            }
            for byte: UInt8 in [0x00, 0x2F, 0x5F, 0x7F] {
                let flags = ByteWords.asciiEqual(w, byte)
                #expect((0..<8).allSatisfy { (flags >> (8 * UInt64($0) + 7)) & 1 == (bytes[$0] == byte ? 1 : 0) }, "\(bytes) == \(byte)")
            }
        }
        #expect(identifiers > 10_000)
    }

    /// A word or the tail of a span, for spans of every length to 24 and every start: the bytes a plain read gives.
    @Test func wordOrTailReadsTheBytesFromThere() {
        for n in 1...24 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 53 &+ 7) }
            for i in 0..<n {
                let expected = bytes[i..<min(i + 8, n)].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                #expect(ByteWords.loadWordOrTail(bytes.span, i) == expected, "n \(n), i \(i)")
            }
        }
    }

    /// Identifiers and texts of every length, with a bad byte at every offset, are judged as byte by byte.
    @Test func identifierAndTextChecksSeeEveryOffset() throws {
        func event(id: [UInt8], feature: [UInt8]) -> [UInt8] {
            Array(#"{"schema":1,"event_id":""#.utf8) + id + Array(#"","type":"feature.used","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","feature":""#.utf8)
                + feature + Array(#"","core_value":false,"session_id":"s"}"#.utf8)
        }
        let good = Array("Az09_-.:".utf8)
        for length in 1...40 {
            let id = (0..<length).map { good[$0 % good.count] }
            #expect(try EventDecoder.decode(event(id: id, feature: id), topic: .engagement).get().eventID == String(decoding: id, as: UTF8.self))
            for at in 0..<length {
                for bad: UInt8 in [0x2F, 0x3B, 0x40, 0x5B, 0x5E, 0x60, 0x7B, 0x20, 0x2C] {
                    var wrong = id
                    wrong[at] = bad
                    #expect(EventDecoder.decode(event(id: wrong, feature: id), topic: .engagement).failureCode == .invalidValue, "\(wrong)")
                }
                // A control character in a text, written as an escape (raw, it is not JSON): DEL, and U+0085.
                for escape in [#"\u007f"#, #"\u0085"#, #"\u0001"#] {
                    let feature = Array(id.prefix(at)) + Array(escape.utf8) + Array(id.dropFirst(at))
                    #expect(EventDecoder.decode(event(id: id, feature: feature), topic: .engagement).failureCode == .invalidValue, "\(escape) at \(at)")
                }
                var raw = id
                raw[at] = 0x7F
                #expect(EventDecoder.decode(event(id: id, feature: raw), topic: .engagement).failureCode == .invalidValue)
            }
        }
    }

    static func featureUsed(_ feature: [UInt8]) -> [UInt8] {
        Array(#"{"schema":1,"event_id":"e1","type":"feature.used","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","feature":""#.utf8)
            + feature + Array(#"","core_value":false,"session_id":"s"}"#.utf8)
    }

    /// A special byte at every offset of a string, so that it falls at every position of a word.
    @Test(arguments: 0..<20)
    func aSpecialByteIsSeenAtEveryOffset(_ at: Int) throws {
        let plain = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        func with(_ insert: [UInt8]) -> [UInt8] { Array(plain.prefix(at)) + insert + Array(plain.dropFirst(at)) }
        let name = { (b: [UInt8]) -> String in String(decoding: b, as: UTF8.self) }
        let decoded = { (b: [UInt8]) in EventDecoder.decode(Self.featureUsed(b), topic: .engagement) }
        #expect(try decoded(with(Array(#"\""#.utf8))).get().payload == .featureUsed(feature: name(with([0x22])), coreValue: false, sessionID: "s"))
        #expect(try decoded(with(Array("é😀".utf8))).get().payload == .featureUsed(feature: name(with(Array("é😀".utf8))), coreValue: false, sessionID: "s"))
        #expect(decoded(with([0x09])).failureCode == .invalidJSON)
        #expect(decoded(with([0xC3, 0x28])).failureCode == .invalidUTF8)
        // An unescaped quote ends the string early: what follows is not JSON.
        #expect(decoded(with([0x22, 0x41])).failureCode == .invalidJSON)
    }

    /// The last string of a value, closer to its end than a word: the scanner reads its last bytes from the
    /// input's last eight. Every length to 20, a special byte at every offset, with 0 to 9 bytes after it.
    @Test func stringsAtTheEndOfAValueAreScannedExactly() throws {
        func featureUsed(session: [UInt8], tail: [UInt8]) -> [UInt8] {
            Array(#"{"schema":1,"event_id":"e1","type":"feature.used","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","feature":"f","core_value":false,"session_id":""#.utf8)
                + session + tail
        }
        let decoded = { (session: [UInt8], tail: [UInt8]) in EventDecoder.decode(featureUsed(session: session, tail: tail), topic: .engagement) }
        let letters = Array("ABCDEFGHIJKLMNOPQRSTU".utf8)  // (no letter that can follow a backslash)
        let closings: [[UInt8]] = [Array("\"}".utf8), Array("\" }".utf8), Array("\"}\n\n\n\n\n\n\n\n".utf8)]
        for length in 1...20 {
            let plain = Array(letters.prefix(length))
            for closing in closings {
                #expect(try decoded(plain, closing).get().payload == .featureUsed(feature: "f", coreValue: false, sessionID: String(decoding: plain, as: UTF8.self)))
                // Unterminated: no closing quote, or the quote and nothing after it.
                #expect(decoded(plain, []).failureCode == .invalidJSON)
                #expect(decoded(plain, [0x22]).failureCode == .invalidJSON)
            }
            for at in 0...length {
                func with(_ insert: [UInt8]) -> [UInt8] { Array(plain.prefix(at)) + insert + Array(plain.dropFirst(at)) }
                for closing in closings {
                    #expect(try decoded(with(Array(#"\""#.utf8)), closing).get().payload
                            == .featureUsed(feature: "f", coreValue: false, sessionID: String(decoding: with([0x22]), as: UTF8.self)))
                    #expect(try decoded(with(Array("é".utf8)), closing).get().payload
                            == .featureUsed(feature: "f", coreValue: false, sessionID: String(decoding: with(Array("é".utf8)), as: UTF8.self)))
                    #expect(decoded(with([0x01]), closing).failureCode == .invalidJSON, "control at \(at) of \(length)")
                    #expect(decoded(with([0xC3]), closing).failureCode == .invalidUTF8, "cut UTF-8 at \(at) of \(length)")
                    #expect(decoded(with([0x5C]), closing).failureCode == .invalidJSON, "lone backslash at \(at) of \(length)")
                }
            }
        }
    }

    /// Enumerated values are matched on their whole bytes: each name matches its case, and a name with any
    /// byte changed, cut short or extended matches nothing (or the case of the name it then equals).
    @Test func enumeratedValuesAreMatchedOnTheirWholeBytes() {
        func check<E: RawRepresentable & CaseIterable & Sendable & Equatable>(_ table: WireNames<E>) where E.RawValue == String {
            let names = Dictionary(uniqueKeysWithValues: E.allCases.map { (Array($0.rawValue.utf8), $0) })
            for (name, value) in names {
                #expect(table.match(name.span) == value)
                var variants: [[UInt8]] = [Array(name.dropLast()), name + [0x61], [0x61] + name]
                for at in name.indices {
                    for byte: UInt8 in [0x00, 0x5F, 0x61, 0x7A, 0xC3] where byte != name[at] {
                        var v = name
                        v[at] = byte
                        variants.append(v)
                    }
                }
                for v in variants { #expect(table.match(v.span) == names[v], "\(String(decoding: v, as: UTF8.self))") }
            }
        }
        check(WireTables.eventType); check(WireTables.plan); check(WireTables.companySize); check(WireTables.cancellation)
        check(WireTables.failureReason); check(WireTables.declineType); check(WireTables.paymentMethod); check(WireTables.cancelSource)
    }

    /// `true`, `false` and `null` are read whole, in one word or (near the end of a value) byte by byte; a
    /// literal cut short or with a byte changed is not JSON.
    @Test func literalsAreReadWholeAtAnyDistanceFromTheEnd() throws {
        let head = Array(#"{"schema":1,"event_id":"e1","type":"feature.used","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","feature":"f","session_id":"s","core_value":"#.utf8)
        for tail in ["}", "} ", "}\n\n\n\n\n\n\n\n\n"] {
            for (literal, core) in [("true", true), ("false", false)] {
                let value = head + Array(literal.utf8) + Array(tail.utf8)
                #expect(try EventDecoder.decode(value, topic: .engagement).get().payload == .featureUsed(feature: "f", coreValue: core, sessionID: "s"))
                for at in 0..<literal.utf8.count {
                    var changed = Array(literal.utf8)
                    changed[at] ^= 0x20
                    #expect(EventDecoder.decode(head + changed + Array(tail.utf8), topic: .engagement).failureCode == .invalidJSON, "\(literal) changed at \(at)")
                    #expect(EventDecoder.decode(head + Array(literal.utf8.prefix(at)) + Array(tail.utf8), topic: .engagement).failureCode == .invalidJSON)
                }
            }
            // `null` is JSON, but not a boolean.
            #expect(EventDecoder.decode(head + Array("null".utf8) + Array(tail.utf8), topic: .engagement).failureCode == .wrongType)
            #expect(EventDecoder.decode(head + Array("nul".utf8) + Array(tail.utf8), topic: .engagement).failureCode == .invalidJSON)
            #expect(EventDecoder.decode(head + Array("nulL".utf8) + Array(tail.utf8), topic: .engagement).failureCode == .invalidJSON)
        }
    }

    /// Span equality a word at a time against element-wise equality: every length to 40, a difference at
    /// every position, and lengths that differ by one. (The Kafka key is compared with `customer_id` so.)
    @Test func spansAreEqualExactlyWhenTheirBytesAre() {
        func equal(_ a: [UInt8], _ b: ArraySlice<UInt8>) -> Bool { ByteWords.equal(a.span, b.span) }
        for n in 0...40 {
            let a = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(equal(a, a[...]))
            #expect(!equal(a, (a + [0])[...]))
            #expect(!equal(a + [0], a[...]))
            for at in 0..<n {
                var b = a
                b[at] ^= UInt8(1 << (at % 8))
                #expect(!equal(a, b[...]), "length \(n), difference at \(at)")
                // The same bytes inside a larger array (a slice's span starts inside its storage).
                let padded = [0xFF] + a + [0xFF]
                #expect(equal(a, padded[1...n]))
            }
        }
    }

    /// The decoder guesses each next key from the encoder's order and checks the guess against the input's
    /// bytes. Any order of the same keys gives the same event, and a key that differs from the guessed name
    /// in its last byte, or is one byte longer or shorter, is not taken for it.
    @Test func keysAreFoundWhateverTheirOrder() throws {
        let known = Set(FieldName.allCases.map(\.wireName))
        for event in samples {
            let encoded = EventEncoder.encode(event)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(encoded)) as? [String: Any])
            func json(_ pairs: [(String, Any)]) throws -> [UInt8] {
                var out = Array("{".utf8)
                for (i, (k, v)) in pairs.enumerated() {
                    if i > 0 { out += Array(",".utf8) }
                    out += Array("\"\(k)\":".utf8) + Array(try JSONSerialization.data(withJSONObject: v, options: .fragmentsAllowed))
                }
                return out + Array("}".utf8)
            }
            // The encoder's order (as `JSONSerialization` gives the keys back in no set order, read it from the bytes).
            let text = String(decoding: encoded, as: UTF8.self)
            let order = object.keys.sorted { text.range(of: "\"\($0)\":")!.lowerBound < text.range(of: "\"\($1)\":")!.lowerBound }
            let pairs = order.map { ($0, object[$0]!) }
            for arrangement in [pairs, pairs.reversed(), pairs.sorted { $0.0 < $1.0 }, Array(pairs.dropFirst(3) + pairs.prefix(3))] {
                #expect(try EventDecoder.decode(try json(arrangement), topic: event.topic).get() == event)
            }
            for (i, (key, _)) in pairs.enumerated() {
                for other in [key + "x", String(key.dropLast()), String(key.dropLast()) + "X"] where !known.contains(other) {
                    var changed = pairs
                    changed[i].0 = other
                    let result = EventDecoder.decode(try json(changed), topic: event.topic)
                    #expect(result.failureCode == .missingField, "\(key) written as \(other)")
                }
            }
        }
    }

    /// Keys near the end of a value (too close for whole-word loads) and keys that share a known name's first
    /// bytes are told apart.
    @Test func keysAreMatchedOnTheirWholeLength() throws {
        let base = #"{"schema":1,"event_id":"e1","type":"cancel.intent","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","source":"cancel_page""#
        #expect(try EventDecoder.decode(Array((base + "}").utf8), topic: .engagement).get().payload == .cancelIntent(source: .cancelPage))
        // Prefixes and extensions of known names are unknown keys (ignored), not the known field.
        for key in ["sourc", "sources", "customer_i", "customer_idx", "occurred_at_", "next_retry_at_"] {
            let json = base + ",\"\(key)\":0}"
            #expect(try EventDecoder.decode(Array(json.utf8), topic: .engagement).get().payload == .cancelIntent(source: .cancelPage), "\(key)")
        }
        // A known name as the last key, with fewer than 16 bytes after its start.
        let last = #"{"schema":1,"event_id":"e1","type":"cancel.intent","occurred_at":"2025-03-14T10:22:31.123Z","customer_id":"c1","source":"x"}"#
        #expect(EventDecoder.decode(Array(last.utf8), topic: .engagement).failureCode == .invalidValue)
    }

    /// The one-window key reader against a plain scan: on random bytes after a quote it either declines or
    /// finds the same closing quote and the field the general lookup finds. (Keys of 16 bytes or more are
    /// left to the general scan; no name of events.md is that long.)
    @Test func keysReadInOneWindowMatchAPlainScan() {
        var rng = SplitMix64(seed: 23)
        let table = FieldName.table
        let names = FieldName.allCases.map { Array($0.wireName.utf8) }
        let odd: [UInt8] = [0x22, 0x5C, 0x00, 0x1F, 0x20, 0x7F, 0x80, 0xC3, 0xFF, 0x5F, 0x61]
        var read = 0
        for round in 0..<50_000 {
            // A known name, a prefix or extension of one, or random bytes; then a quote or an odd byte.
            var body: [UInt8]
            switch round % 4 {
            case 0: body = names[Int(rng.next() % UInt64(names.count))]
            case 1: body = Array(names[Int(rng.next() % UInt64(names.count))].dropLast(Int(rng.next() % 3)))
            case 2: body = names[Int(rng.next() % UInt64(names.count))] + [0x5F]
            default: body = (0..<Int(rng.next() % 20)).map { _ in UInt8(0x61 + rng.next() % 26) }
            }
            if rng.next() % 5 == 0, !body.isEmpty { body[Int(rng.next() % UInt64(body.count))] = odd[Int(rng.next() % UInt64(odd.count))] }
            let tail = (0..<Int(rng.next() % 24)).map { _ in odd[Int(rng.next() % UInt64(odd.count))] }
            let input: [UInt8] = [0x22] + body + [0x22] + tail
            let span = input.span
            // The plain answer: the first byte after the opening quote that is a quote or special.
            var end = 1
            while end < input.count, input[end] != 0x22, input[end] != 0x5C, input[end] >= 0x20, input[end] < 0x80 { end += 1 }
            let plainKey: Range<Int>? = end < input.count && input[end] == 0x22 && end - 1 <= 15 ? 1..<end : nil
            if let (range, field) = table.scanKey(span, 0) {
                read += 1
                #expect(range == plainKey, "\(input)")
                #expect(field == table.lookup(span, range), "\(input)")
                #expect(field == names.firstIndex(of: Array(input[range])), "\(input)")
            } else if let plainKey {
                // Declining is allowed only when the 16-byte window does not fit in the input.
                #expect(plainKey.lowerBound + 16 > input.count, "declined \(input)")
            }
        }
        #expect(read > 10_000)
    }
}
