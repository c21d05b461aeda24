import ArgumentParser
import Foundation
import Kafka

/// How a command reaches Kafka: the bootstrap servers plus any librdkafka property, from (strongest
/// first) `--bootstrap-servers`, `-X key=value` (as kcat's), a `--kafka-config` properties file (as kcat's
/// `-F` and the Kafka CLI's `--command-config`: secrets stay out of the command line), the
/// `UNDERCURRENT_BOOTSTRAP_SERVERS` variable, and last the embedded broker's well-known file.
public struct KafkaOptions: ParsableArguments {
    @Option(name: .long, help: "Kafka bootstrap servers (default: $UNDERCURRENT_BOOTSTRAP_SERVERS, else the address the embedded broker wrote to \(BrokerAddressFile.defaultPath)).")
    public var bootstrapServers: String?

    @Option(name: .customShort("X"), help: ArgumentHelp("A librdkafka property, key=value (repeatable), e.g. -X security.protocol=SASL_SSL.", valueName: "key=value"))
    public var properties: [String] = []

    @Option(name: .customLong("kafka-config"), help: ArgumentHelp("A librdkafka properties file: key=value lines, # comments (e.g. sasl.username and sasl.password, kept off the command line); -X overrides it.", valueName: "file"))
    public var propertiesFile: String?

    public init() {}

    public func validate() throws {
        for p in properties {
            do { _ = try KafkaConfig.parseAssignment(p) } catch let e as KafkaError { throw ValidationError(e.message) }
        }
        if let propertiesFile { _ = try Self.readProperties(propertiesFile) }
    }

    /// A properties file's settings; a one-line error naming the file (and the line) when it cannot be used.
    static func readProperties(_ path: String) throws -> [(String, String)] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("--kafka-config \(path): cannot read it (\((error as NSError).localizedFailureReason ?? error.localizedDescription))")
        }
        var out: [(String, String)] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else {
                throw ValidationError("--kafka-config \(path) line \(i + 1): expected key=value")
            }
            out.append((line[..<eq].trimmingCharacters(in: .whitespaces), line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)))
        }
        return out
    }

    /// The client configuration. Throws a one-line error when no bootstrap address is known.
    public func kafkaConfig(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KafkaConfig {
        var config = KafkaConfig()
        if let propertiesFile {
            for (k, v) in try Self.readProperties(propertiesFile) { config[k] = v }
        }
        for p in properties {
            let (k, v) = try KafkaConfig.parseAssignment(p)
            config[k] = v
        }
        let embedded = BrokerAddressFile.read()
        if let servers = bootstrapServers {
            config["bootstrap.servers"] = servers
        } else if config["bootstrap.servers"] == nil {
            if let env = environment["UNDERCURRENT_BOOTSTRAP_SERVERS"], !env.isEmpty {
                config["bootstrap.servers"] = env
            } else {
                guard let embedded else {
                    throw ValidationError("no --bootstrap-servers, UNDERCURRENT_BOOTSTRAP_SERVERS or embedded broker address in \(BrokerAddressFile.defaultPath); start one with `undercurrent broker`")
                }
                config["bootstrap.servers"] = embedded
            }
        }
        // The address `undercurrent broker` wrote: an embedded broker (see `EmbeddedBroker.tuned`).
        config.pointsAtEmbeddedBroker = embedded != nil && config["bootstrap.servers"] == embedded
        // A property librdkafka refuses is a bad flag: refused here, before any work, not when the client starts.
        do { try config.validate() } catch let error as KafkaError { throw ValidationError(error.message) }
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
