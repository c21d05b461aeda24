import Events
import Testing

/// Kafka's rule for topic names, as the commands check the names they are given.
@Suite struct TopicNameTests {
    @Test func legalNamesPassAndOthersAreRefusedWithTheReason() {
        for name in ["billing", "replay.billing", "load_test-2.payments", "a", String(repeating: "x", count: 249), "..."] + Topics.inputs + Topics.outputs {
            #expect(Topics.problem(with: name) == nil, "\(name)")
        }
        let refused: [(String, String)] = [
            ("", "cannot be empty"),
            (".", "'.' cannot be a topic name"),
            ("..", "'..' cannot be a topic name"),
            ("rb.billing,payments=rb.payments", "',' separates names"),
            ("r billing", "' ' is not allowed"),
            ("r/billing", "'/' is not allowed"),
            ("rechnungsläufe", "'ä' is not allowed"),
            (String(repeating: "x", count: 250), "at most 249 characters, this one 250"),
        ]
        for (name, reason) in refused {
            let problem = Topics.problem(with: name)
            #expect(problem?.contains(reason) == true, "\(name): \(problem ?? "accepted")")
        }
    }

    @Test func aClustersTopicsAreListedSortedWithoutInternalOnesAndCutShort() {
        #expect(Topics.listed(["payments", "__consumer_offsets", "billing"]) == "billing, payments")
        #expect(Topics.listed(["__consumer_offsets"]) == "none")
        #expect(Topics.listed((0..<25).map { String(format: "t%02d", $0) }) == (0..<20).map { String(format: "t%02d", $0) }.joined(separator: ", ") + " and 5 more")
    }
}
