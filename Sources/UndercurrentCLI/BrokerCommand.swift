import Events
import Consumer
import ArgumentParser
import Foundation
import Kafka
import Logging

/// Starts the embedded broker (librdkafka's mock cluster) with the product's topics.
public struct EmbeddedBrokerRunner {
    public var brokers = 1
    public var partitions = 6
    public var addressFile: String? = BrokerAddressFile.defaultPath

    public init(brokers: Int = 1, partitions: Int = 6, addressFile: String? = BrokerAddressFile.defaultPath) {
        self.brokers = brokers
        self.partitions = partitions
        self.addressFile = addressFile
    }

    public func start(logger: Logger) throws -> EmbeddedBroker {
        let broker = try EmbeddedBroker(brokers: brokers, logger: logger)
        for topic in Topics.inputs + Topics.outputs {
            try broker.createTopic(topic, partitions: partitions, replicationFactor: min(brokers, 3))
        }
        if let addressFile { try BrokerAddressFile.write(broker.bootstrapServers, to: addressFile) }
        return broker
    }
}

struct BrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded Kafka broker (librdkafka's mock cluster) on loopback until Ctrl-C.",
        discussion: """
        Creates the topics billing, payments, engagement, customer-risk, alerts and events-dlq, prints the \
        bootstrap address and writes it to \(BrokerAddressFile.defaultPath) so other commands find it.
        Each partition of this broker keeps only about 5 MiB: use enough partitions for large runs.
        """
    )

    @Option(help: "Number of brokers in the cluster (1-9).") var brokers = 1
    @Option(help: "Partitions per topic (1-256).") var partitions = 6
    @Option(help: "Where to write the bootstrap address.") var addressFile: String = BrokerAddressFile.defaultPath
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...9).contains(brokers) else { throw ValidationError("--brokers: expected 1 to 9, got \(brokers)") }
        guard (1...256).contains(partitions) else { throw ValidationError("--partitions: expected 1 to 256, got \(partitions)") }
    }

    func run() throws {
        let logger = common.makeLogger("broker")
        let stop = StopSignal()
        let broker = try EmbeddedBrokerRunner(brokers: brokers, partitions: partitions, addressFile: addressFile).start(logger: logger)
        Console.out(broker.bootstrapServers)
        logger.info("embedded broker up", metadata: [LogKey.bootstrap: "\(broker.bootstrapServers)",
                                                     LogKey.partitions: "\(partitions)", LogKey.brokerFile: "\(addressFile)"])
        stop.wait()
        BrokerAddressFile.remove(ifContains: broker.bootstrapServers, at: addressFile)
        logger.info("embedded broker stopped (\(stop.receivedSignal ?? "stop"))")
    }
}
