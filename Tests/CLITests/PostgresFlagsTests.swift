import Consumer
import Foundation
import PostgresSink
import Testing
@testable import UndercurrentCLI

/// `marts-consumer`'s flags reach the PostgreSQL sink's options.
@Suite struct PostgresFlagsTests {
    @Test func theTimeoutAndTopicFlagsReachTheSinksOptions() throws {
        let uri = "postgresql://u@127.0.0.1:5432/db"
        let plain = try MartsConsumerCommand.parse(["--state-dir", "s", "--postgres", uri])
        var options = MartsConsumer.Options(stateDirectory: URL(fileURLWithPath: "s"))
        plain.applyTopics(to: &options)
        let defaults = plain.sinkOptions(uri, consumer: options)
        #expect(defaults.responseTimeout == .seconds(60) && !defaults.rebuild)
        #expect(defaults.inputTopics == ["billing", "payments", "engagement"])

        let set = try MartsConsumerCommand.parse(["--state-dir", "s", "--postgres", uri, "--postgres-timeout", "2.5", "--topic-prefix", "r."])
        set.applyTopics(to: &options)
        options.rebuild = true
        let o = set.sinkOptions(uri, consumer: options)
        #expect(o.responseTimeout == .milliseconds(2500))
        #expect(o.rebuild)
        #expect(o.inputTopics == ["r.billing", "r.payments", "r.engagement"])
    }
}
