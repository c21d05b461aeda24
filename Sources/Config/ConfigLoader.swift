import Foundation
import Marts
import Simulation
import Yams

/// Where the configuration files come from: a directory, or the copy built into the executables.
public enum ConfigLocation: Sendable, Equatable, CustomStringConvertible {
    case directory(URL)
    case builtin

    /// A file's text, by its path relative to the config directory; nil when there is no such file.
    public func text(_ relative: String) throws -> String? {
        switch self {
        case .builtin:
            return BuiltinConfig.files[relative]
        case let .directory(dir):
            let url = dir.appendingPathComponent(relative)
            guard FileManager.default.fileExists(atPath: url.path) else { return nil }
            do { return try String(contentsOf: url, encoding: .utf8) } catch {
                throw ConfigFileError(.unreadable, "config: cannot read \(url.path): \(error.localizedDescription)")
            }
        }
    }

    public var description: String {
        switch self {
        case .builtin: "the built-in defaults"
        case let .directory(dir): dir.path
        }
    }

    /// The scenarios it holds.
    public var scenarios: [String] {
        switch self {
        case .builtin:
            return BuiltinConfig.files.keys.filter { $0.hasPrefix("scenarios/") }.map { String($0.dropFirst(10).dropLast(5)) }.sorted()
        case let .directory(dir):
            return ConfigLoader.scenarios(in: dir)
        }
    }
}

/// Loads `baseline.yaml` and a scenario's overrides into a `SimulationConfig`.
public enum ConfigLoader {
    /// Where config files are looked for, first found wins: an explicit directory, `UNDERCURRENT_CONFIG_DIR`,
    /// `./config`, `/etc/undercurrent`, then the defaults built into the executables. An explicit directory
    /// or `UNDERCURRENT_CONFIG_DIR` without `baseline.yaml` is an error (a typo must not fall back silently).
    public static func location(_ explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConfigLocation {
        for (given, source) in [(explicit, "--config-dir"), (environment["UNDERCURRENT_CONFIG_DIR"].flatMap { $0.isEmpty ? nil : $0 }, "UNDERCURRENT_CONFIG_DIR")] {
            guard let given else { continue }
            guard FileManager.default.fileExists(atPath: given + "/baseline.yaml") else {
                throw ConfigFileError(.noDirectory, "\(source) \(given) holds no baseline.yaml")
            }
            return .directory(URL(fileURLWithPath: given))
        }
        for c in ["config", "/etc/undercurrent"] where FileManager.default.fileExists(atPath: c + "/baseline.yaml") {
            return .directory(URL(fileURLWithPath: c))
        }
        return .builtin
    }

    public static func scenarios(in dir: URL) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("scenarios").path)) ?? []
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    public static func load(scenario: String, configDir: URL) throws -> SimulationConfig {
        try load(scenario: scenario, location: .directory(configDir))
    }

    public static func load(scenario: String, location: ConfigLocation) throws -> SimulationConfig {
        guard let baseText = try location.text("baseline.yaml") else {
            throw ConfigFileError(.noDirectory, "\(location) holds no baseline.yaml")
        }
        let base = try mapping(baseText, file: "baseline.yaml")
        guard let scenarioText = try location.text("scenarios/\(scenario).yaml") else {
            throw ConfigFileError(.unknownScenario, "unknown scenario '\(scenario)'; expected one of \(location.scenarios.joined(separator: ", "))")
        }
        let overrides = try mapping(scenarioText, file: "\(scenario).yaml")
        let merged = try merge(base, overrides, file: "\(scenario).yaml")
        do {
            let yaml = try Yams.dump(object: merged)
            return try YAMLDecoder().decode(SimulationConfig.self, from: yaml)
        } catch let error as DecodingError {
            throw ConfigFileError(.invalid, "config: \(describe(error))")
        }
    }

    private static func mapping(_ text: String, file: String) throws -> [String: Any] {
        do {
            guard let object = try Yams.load(yaml: text) else { return [:] }
            guard let mapping = object as? [String: Any] else {
                throw ConfigFileError(.invalid, "config \(file): expected a mapping of keys at the top level")
            }
            return mapping
        } catch let error as YamlError {
            throw ConfigFileError(.invalid, "config \(file): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
    }

    /// Sections merge key by key; values inside a section replace the baseline's whole value.
    static func merge(_ base: [String: Any], _ overrides: [String: Any], file: String) throws -> [String: Any] {
        var out = base
        for (key, value) in overrides {
            guard let baseValue = base[key] else {
                throw ConfigFileError(.invalid, "config \(file): unknown key '\(key)' (expected one of \(base.keys.sorted().joined(separator: ", ")))")
            }
            if let section = baseValue as? [String: Any], let over = value as? [String: Any] {
                var merged = section
                for (k, v) in over {
                    guard section[k] != nil else {
                        throw ConfigFileError(.invalid, "config \(file): unknown key '\(key).\(k)' (expected one of \(section.keys.sorted().joined(separator: ", ")))")
                    }
                    merged[k] = v
                }
                out[key] = merged
            } else {
                out[key] = value
            }
        }
        return out
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ c: [CodingKey]) -> String { c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case let .keyNotFound(key, ctx): return "missing key '\(path(ctx.codingPath + [key]))'"
        case let .typeMismatch(type, ctx): return "'\(path(ctx.codingPath))' must be \(type)"
        case let .valueNotFound(type, ctx): return "'\(path(ctx.codingPath))' must be \(type), got null"
        case let .dataCorrupted(ctx): return "'\(path(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// Loads and validates failure-spike alert rules (`alerts.yaml`).
public enum AlertConfig {
    /// Loads `alerts.yaml` from the config directory (or an explicit file) and validates it.
    public static func load(file: String?, configDir: String?) throws -> AlertRules {
        let path: String, text: String
        if let file {
            path = file
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw ConfigFileError(.unreadable, "cannot read alert rules \(path)") }
        } else {
            let location = try ConfigLoader.location(configDir)
            path = location == .builtin ? "alerts.yaml (built in)" : location.description + "/alerts.yaml"
            guard let found = try location.text("alerts.yaml") else { throw ConfigFileError(.unreadable, "cannot read alert rules \(path)") }
            text = found
        }
        let rules: AlertRules
        do { rules = try YAMLDecoder().decode(AlertRules.self, from: text) } catch let e as DecodingError {
            throw ConfigFileError(.invalid, "alert rules \(path): \(ConfigLoader.describe(e))")
        } catch {
            throw ConfigFileError(.invalid, "alert rules \(path): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        do { try rules.validate() } catch { throw ConfigFileError(.invalid, "alert rules \(path): \(error)") }
        return rules
    }
}

/// A configuration that cannot be used, in one line naming the file or key; `code` says which kind.
public struct ConfigFileError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable {
        /// No directory holds baseline.yaml.
        case noDirectory
        /// A scenario that has no file.
        case unknownScenario
        /// A file that cannot be read.
        case unreadable
        /// A file that is not valid YAML or has a wrong key or value.
        case invalid
    }
    public var code: Code
    public var description: String
    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

