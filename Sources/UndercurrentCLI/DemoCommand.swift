import ArgumentParser
import Foundation
import Kafka
import Logging

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The whole story on the embedded broker: broker, producers and consumer, ending with the executive KPIs."
    )

    @OptionGroup var common: CommonOptions

    func run() throws {
        let logger = common.makeLogger("demo")
        let broker = try EmbeddedBrokerRunner(addressFile: nil).start(logger: logger)
        Console.out("embedded broker on \(broker.bootstrapServers)")
        let result = try SmokeCheck(messages: 10_000).run(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: logger)
        Console.out("produce/consume check: \(result.consumed) of \(result.produced) messages round-tripped in \(String(format: "%.2f", result.seconds)) s")
        if result.consumed != result.produced { throw ExitCode(1) }
    }
}
