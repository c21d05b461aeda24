import Events
import Foundation
import Testing

/// A property-based fuzzer for the decoder, bounded in time (UNDERCURRENT_FUZZ_SECONDS, 5 s by default; the
/// soak script also runs libFuzzer on it for longer): valid events mutated by byte flips, insertions,
/// deletions, splices, truncations and hostile tokens. No input crashes it, and whatever it accepts
/// re-encodes to a value that decodes to the same event.
@Suite struct DecoderFuzzTests {
    static let seconds = Double(ProcessInfo.processInfo.environment["UNDERCURRENT_FUZZ_SECONDS"] ?? "") ?? 5

    @Test func mutatedEventsNeverCrashAndAcceptedOnesRoundTrip() {
        let seeds: [[UInt8]] = samples.map { EventEncoder.encode($0) }
        let tokens: [[UInt8]] = ["NaN", "1e999", "-0", "99999999999999999999", "\"\\ud800\"", "null", "[", "{", "}", "\"", "\\", "\u{0}",
                                 "true", "\"schema\":2", "\"amount_cents\":-1", "0001-01-01T00:00:00.000Z", "\u{FEFF}", "\"\\u0000\""].map { Array($0.utf8) }
        var rng = SystemRandomNumberGenerator()
        let deadline = Date().addingTimeInterval(Self.seconds)
        var runs = 0, accepted = 0
        while Date() < deadline {
            var v = seeds.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = v.isEmpty ? 0 : Int.random(in: 0..<v.count, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0 where !v.isEmpty: v[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                case 1: v.insert(UInt8.random(in: 0...255, using: &rng), at: i)
                case 2 where !v.isEmpty: v.remove(at: i)
                case 3: v.insert(contentsOf: tokens.randomElement(using: &rng)!, at: i)
                case 4: v = Array(v.prefix(i))
                case 5:
                    let other = seeds.randomElement(using: &rng)!
                    v = Array(v.prefix(i)) + Array(other.suffix(Int.random(in: 0...other.count, using: &rng)))
                default:
                    if i < v.count { v.replaceSubrange(i..<min(v.count, i + 4), with: tokens.randomElement(using: &rng)!) }
                }
            }
            for topic in InputTopic.allCases {
                if case let .success(event) = EventDecoder.decode(v, topic: topic) {
                    accepted += 1
                    if case let .success(again) = EventDecoder.decode(EventEncoder.encode(event), topic: topic) {
                        #expect(again == event)
                    } else {
                        Issue.record("accepted \(String(decoding: v, as: UTF8.self)) but its re-encoding is rejected")
                    }
                }
            }
            runs += 1
        }
        #expect(runs > 1000)
        #expect(accepted > 0, "some mutations stay valid (e.g. a changed digit)")
    }
}
