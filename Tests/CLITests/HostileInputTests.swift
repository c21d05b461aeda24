import Consumer
import Checkpoints
import Events
import Foundation
import Kafka
import Marts
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// The hostile corpus: kinds of bad messages, each with the rejection code the dead-letter topic must name.
/// A valid event for a customer of the simulated business supplies the shape each case breaks.
func hostileCorpus(valid: Event) -> [(kind: String, topic: String, key: [UInt8]?, value: [UInt8], code: String)] {
    let good = String(decoding: EventEncoder.encode(valid), as: UTF8.self)
    let key = Array(valid.customerID.utf8)
    let topic = valid.topic.rawValue
    func edit(_ from: String, _ to: String) -> [UInt8] { Array(good.replacingOccurrences(of: from, with: to).utf8) }
    let id = valid.eventID, customer = valid.customerID
    let payment = #"{"schema":1,"event_id":"evt_hostile_PAY","type":"payment.succeeded","occurred_at":"2024-03-01T00:00:00.000Z","customer_id":"\#(customer)","payment_id":"p1","invoice_id":"i1","plan":"standard","amount_cents":AMOUNT,"currency":"USD","attempt":1}"#
    func pay(_ amount: String, _ n: Int) -> [UInt8] { Array(payment.replacingOccurrences(of: "AMOUNT", with: amount).replacingOccurrences(of: "PAY", with: "\(n)").utf8) }
    let corpus: [(String, String, [UInt8]?, [UInt8], String)] = [
        ("invalid UTF-8", topic, key, Array(good.utf8.prefix(20)) + [0xC3, 0x28, 0xFF] + Array(good.utf8.dropFirst(20)), "invalid_utf8"),
        ("truncated JSON", topic, key, Array(good.utf8.prefix(good.utf8.count / 2)), "invalid_json"),
        ("deeply nested JSON", topic, key, Array(("{\"schema\":1,\"x\":" + String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_001)).utf8), "invalid_json"),
        ("a 10 MiB value", topic, key, Array(("{\"pad\":\"" + String(repeating: "x", count: 10 << 20) + "\"}").utf8), "too_large"),
        ("NaN", "payments", key, pay("NaN", 1), "invalid_json"),
        ("a huge number", "payments", key, pay("99999999999999999999999999", 2), "invalid_value"),
        ("negative cents", "payments", key, pay("-4900", 3), "invalid_value"),
        ("fractional cents", "payments", key, pay("49.5", 4), "invalid_value"),
        ("a wrong field type", "payments", key, pay("\"4900\"", 5), "wrong_type"),
        ("an unknown schema version", topic, key, edit("\"schema\":1", "\"schema\":2"), "unsupported_schema"),
        ("an unknown type", topic, key, edit("\"type\":\"\(valid.type.rawValue)\"", "\"type\":\"customer.teleported\""), "unknown_type"),
        ("a missing field", topic, key, edit("\"customer_id\":\"\(customer)\",", ""), "missing_field"),
        ("a time in year 0001", topic, key, edit("\"occurred_at\":\"\(valid.occurredAt)\"", "\"occurred_at\":\"0001-01-01T00:00:00.000Z\""), "invalid_time"),
        ("a time in year 9999", topic, key, edit("\"occurred_at\":\"\(valid.occurredAt)\"", "\"occurred_at\":\"9999-12-31T23:59:59.999Z\""), "invalid_time"),
        ("markup in an id", topic, key, edit("\"event_id\":\"\(id)\"", "\"event_id\":\"<script>alert(1)</script>\""), "invalid_value"),
        ("control characters in an id", topic, key, edit("\"event_id\":\"\(id)\"", "\"event_id\":\"a\\u0000b\\u001b[31m\""), "invalid_value"),
        ("an id of 1000 bytes", topic, key, edit("\"event_id\":\"\(id)\"", "\"event_id\":\"\(String(repeating: "a", count: 1000))\""), "invalid_value"),
        ("an event_id reused with different content", topic, key, edit("\"occurred_at\":\"\(valid.occurredAt)\"", "\"occurred_at\":\"\(valid.occurredAt.adding(ms: 1))\""), "conflicting_duplicate"),
        ("a JSON array", topic, key, Array("[1,2,3]".utf8), "not_an_object"),
        ("a repeated key", topic, key, Array(good.replacingOccurrences(of: "{\"schema\":1,", with: "{\"schema\":1,\"schema\":1,").utf8), "repeated_key"),
        ("the wrong topic", topic == "billing" ? "payments" : "billing", key, Array(good.utf8), "wrong_topic"),
        ("a key that is not customer_id", topic, Array("cus_someone_else".utf8), Array(good.utf8), "key_mismatch"),
        ("an empty value", topic, key, [], "invalid_json"),
        ("JSON null", topic, key, Array("null".utf8), "not_an_object"),
        ("an unknown plan", "payments", key, Array(String(decoding: pay("4900", 6), as: UTF8.self).replacingOccurrences(of: "\"standard\"", with: "\"platinum\"").utf8), "invalid_value"),
        ("a byte-order mark", topic, key, [0xEF, 0xBB, 0xBF] + Array(good.utf8), "invalid_json"),
        ("no key", topic, nil, Array(good.utf8), "missing_key"),
    ]
    return corpus.map { (kind: $0.0, topic: $0.1, key: $0.2, value: $0.3, code: $0.4) }
}

@Suite(.serialized) struct HostileInputTests {
    /// Every kind of bad message, mixed into valid traffic, goes to the dead-letter topic with its reason;
    /// nothing crashes and the marts equal those of the valid traffic alone.
    @Test func hostileCorpusGoesToTheDeadLetterTopicAndLeavesTheMartsAlone() throws {
        let p = try smallWorld()
        let events = Array(try World(p))
        let valid = events.first { $0.type == .customerSignedUp }!
        let corpus = hostileCorpus(valid: valid)
        #expect(Set(corpus.map(\.kind)).count >= 20)
        let broker = try EmbeddedBrokerRunner(partitions: 3, addressFile: nil).start(logger: quiet)
        let producer = try KafkaProducer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers, ["message.max.bytes": "20000000"]), logger: quiet)
        func send(_ c: (kind: String, topic: String, key: [UInt8]?, value: [UInt8], code: String)) throws {
            try producer.send(ProducerMessage(topic: c.topic, key: c.key, value: c.value, headers: [KafkaHeader("corpus-kind", c.kind)]))
        }
        // Half the corpus, the valid traffic, the rest.
        for c in corpus.prefix(corpus.count / 2) { try send(c) }
        try producer.flush()
        let delivered = try produce(p, to: broker)
        for c in corpus.dropFirst(corpus.count / 2) { try send(c) }
        try producer.flush()
        #expect(producer.statistics.failed == 0)

        let dir = tempDir()
        let summary = try consume(broker, stateDir: dir, group: "hostile") { $0.checkpointEvents = 1000 }
        #expect(summary.rejected == corpus.count)
        #expect(summary.accepted == delivered)
        #expect(summary.duplicates == 0)

        let (snapshot, _) = try StateDirectory(dir.path).load()
        var reference = MartState()
        for e in events { _ = reference.apply(e, valueHash: ValueHash.of(EventEncoder.encode(e))) }
        #expect(snapshot.tables() == MartSnapshot([reference]).tables())

        // The dead-letter topic holds each bad message once, unchanged, with the expected reason.
        let dlq = try KafkaConsumer(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
        try dlq.assign(Dictionary(uniqueKeysWithValues: (0..<3).map { (TopicPartition("events-dlq", Int32($0)), KafkaOffset.beginning) }))
        var got: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while got.count < corpus.count && ContinuousClock.now < deadline { got += try dlq.poll(timeout: .milliseconds(200)) }
        #expect(got.count == corpus.count)
        for c in corpus {
            // Unchanged, or (too large for the dead-letter topic) a prefix that says how large the original was.
            let m = got.first { m in
                guard m.key.map(Array.init) == c.key else { return false }
                if m.value.elementsEqual(c.value) { return true }
                return m.header("dlq-truncated-from") == Array(String(c.value.count).utf8) && c.value.starts(with: m.value)
            }
            let reason = m?.header("dlq-reason").map { String(decoding: $0, as: UTF8.self) } ?? "(missing)"
            #expect(reason.hasPrefix(c.code + ":"), "\(c.kind): \(reason)")
        }
    }

    /// Memory stays bounded: the whole corpus fed 2,000 times leaves the state exactly as the valid events
    /// alone leave it (no customer, no remembered id, no pending change from a rejected message).
    @Test func rejectedMessagesLeaveNoTraceInTheState() throws {
        let events = Array(try World(try smallWorld()).prefix(500))
        let corpus = hostileCorpus(valid: events.first { $0.type == .customerSignedUp }!).filter { $0.code != "conflicting_duplicate" }
        var state = MartState()
        for e in events { _ = state.ingest(value: EventEncoder.encode(e)[...], topic: e.topic, key: Array(e.customerID.utf8)[...]) }
        _ = state.takeChanges()
        let before = (state.customers.count, state.seen.count, state.accepted)
        for _ in 0..<2000 {
            for c in corpus {
                let (outcome, _) = state.ingest(value: c.value[...], topic: InputTopic(rawValue: c.topic), key: c.key?[...], requireKey: true)
                guard case .rejected = outcome else { Issue.record("\(c.kind) was not rejected"); return }
            }
        }
        #expect((state.customers.count, state.seen.count, state.accepted) == before)
        #expect(state.rejected == corpus.count * 2000)
        #expect(state.takeChanges().customers.isEmpty)
    }
}
