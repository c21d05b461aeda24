import ArgumentParser
import Foundation
import Kafka

/// How a command reaches Kafka: the bootstrap servers (by default the embedded broker's well-known
/// file) plus any librdkafka property, as kcat's `-X key=value`.
public struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Kafka bootstrap servers (default: the address the embedded broker wrote to \(BrokerAddressFile.defaultPath)).")
    public var bootstrapServers: String?

    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property, key=value (repeatable), e.g. -X security.protocol=SASL_SSL.", valueName: "key=value"))
    public var properties: [String] = []

    public init() {}

    public func validate() throws {
        for p in properties {
            do { _ = try KafkaConfig.parseAssignment(p) } catch let e as KafkaError { throw ValidationError(e.message) }
        }
    }

    /// The client configuration. Throws a one-line error when no bootstrap address is known.
    public func kafkaConfig() throws -> KafkaConfig {
        var config = KafkaConfig()
        for p in properties {
            let (k, v) = try KafkaConfig.parseAssignment(p)
            config[k] = v
        }
        let embedded = BrokerAddressFile.read()
        if let servers = bootstrapServers {
            config["bootstrap.servers"] = servers
        } else if config["bootstrap.servers"] == nil {
            guard let embedded else {
                throw ValidationError("no --bootstrap-servers given and no embedded broker address in \(BrokerAddressFile.defaultPath); start one with `undercurrent broker`")
            }
            config["bootstrap.servers"] = embedded
        }
        // The address `undercurrent broker` wrote: an embedded broker (see `EmbeddedBroker.tuned`).
        config.pointsAtEmbeddedBroker = embedded != nil && config["bootstrap.servers"] == embedded
        return config
    }
}

/// The well-known file where `undercurrent broker` writes its bootstrap address.
/// `UNDERCURRENT_BROKER_FILE` overrides the location.
public enum BrokerAddressFile {
    public static var defaultPath: String {
        if let env = ProcessInfo.processInfo.environment["UNDERCURRENT_BROKER_FILE"], !env.isEmpty { return env }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/tmp"
        return home + "/.undercurrent/bootstrap-servers"
    }

    public static func write(_ servers: String, to path: String = defaultPath) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((servers + "\n").utf8).write(to: url, options: .atomic)
    }

    public static func read(from path: String = defaultPath) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    public static func remove(ifContains servers: String, at path: String = defaultPath) {
        if read(from: path) == servers { try? FileManager.default.removeItem(atPath: path) }
    }
}
