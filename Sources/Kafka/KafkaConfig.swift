import CRdKafka

/// librdkafka properties, passed through verbatim (as kcat's `-X key=value`).
///
/// Every property librdkafka knows can be set, so the same binaries work against a secured
/// production cluster (`security.protocol=SASL_SSL`, `sasl.mechanisms`, ...). Values are checked
/// by librdkafka itself (`validate()`, and again when a client is created); a rejected key is reported by name.
public struct KafkaConfig: Sendable, Equatable {
    public private(set) var properties: [String: String]
    /// Whether the bootstrap address is an embedded broker's (read from its address file); not a librdkafka
    /// property. See `EmbeddedBroker.tuned`.
    public var pointsAtEmbeddedBroker = false

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    public init(bootstrapServers: String, _ extra: [String: String] = [:]) {
        self.properties = extra
        self.properties["bootstrap.servers"] = bootstrapServers
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Adds properties that are not set yet (defaults never override what a user passed).
    public func withDefaults(_ defaults: [String: String]) -> KafkaConfig {
        var copy = self
        for (key, value) in defaults where copy.properties[key] == nil {
            copy.properties[key] = value
        }
        return copy
    }

    /// Parses `key=value` as given to `-X`. Throws a configuration error naming the expected form.
    public static func parseAssignment(_ text: String) throws -> (String, String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw KafkaError(kind: .configuration, message: "-X expects key=value, got '\(text)'")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// Property names whose values must never be logged or shown.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.hasSuffix(".key") || k.contains("token")
            || k.contains("sasl.jaas")
    }

    /// The properties with secrets masked, for logs.
    public var redacted: [String: String] {
        properties.reduce(into: [:]) { out, kv in
            out[kv.key] = KafkaConfig.isSecret(kv.key) ? "***" : kv.value
        }
    }

    /// The properties as `key=value`, sorted, secrets masked: for one log line.
    public var redactedDescription: String {
        redacted.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Checks every property with librdkafka (a name it does not know, a value it refuses) without creating a
    /// client, so that a command can refuse them before any work.
    public func validate() throws {
        rd_kafka_conf_destroy(try makeNativeConf())
    }

    /// Builds an `rd_kafka_conf_t`. The caller owns the result until it hands it to `rd_kafka_new`.
    func makeNativeConf() throws -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(kind: .configuration, message: "rd_kafka_conf_new failed")
        }
        var errbuf = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let reason = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(kind: .configuration, message: "Kafka property '\(key)': \(reason)")
            }
        }
        return conf
    }
}

/// librdkafka's version string, e.g. "2.0.2".
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }
