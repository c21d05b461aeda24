import Foundation
import Marts
import Simulation
import Yams

/// Loads `config/baseline.yaml` and a scenario's overrides into a `SimulationConfig`.
public enum ConfigLoader {
    /// Where config files are looked for: an explicit directory, `UNDERCURRENT_CONFIG_DIR`, `./config`,
    /// `/etc/undercurrent`.
    public static func directory(_ explicit: String?) throws -> URL {
        var candidates: [String] = []
        if let explicit { candidates.append(explicit) }
        if let env = ProcessInfo.processInfo.environment["UNDERCURRENT_CONFIG_DIR"], !env.isEmpty { candidates.append(env) }
        candidates += ["config", "/etc/undercurrent"]
        for c in candidates where FileManager.default.fileExists(atPath: c + "/baseline.yaml") {
            return URL(fileURLWithPath: c)
        }
        throw ConfigFileError(.noDirectory, "no config directory with baseline.yaml found (looked in \(candidates.joined(separator: ", ")))")
    }

    public static func scenarios(in dir: URL) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("scenarios").path)) ?? []
        return files.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
    }

    public static func load(scenario: String, configDir: URL) throws -> SimulationConfig {
        let baseURL = configDir.appendingPathComponent("baseline.yaml")
        let base = try loadMapping(baseURL)
        let scenarioURL = configDir.appendingPathComponent("scenarios/\(scenario).yaml")
        guard FileManager.default.fileExists(atPath: scenarioURL.path) else {
            throw ConfigFileError(.unknownScenario, "unknown scenario '\(scenario)'; expected one of \(scenarios(in: configDir).joined(separator: ", "))")
        }
        let overrides = try loadMapping(scenarioURL)
        let merged = try merge(base, overrides, file: scenarioURL.lastPathComponent)
        do {
            let yaml = try Yams.dump(object: merged)
            return try YAMLDecoder().decode(SimulationConfig.self, from: yaml)
        } catch let error as DecodingError {
            throw ConfigFileError(.invalid, "config: \(describe(error))")
        }
    }

    private static func loadMapping(_ url: URL) throws -> [String: Any] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigFileError(.unreadable, "config: cannot read \(url.path): \(error.localizedDescription)")
        }
        do {
            guard let object = try Yams.load(yaml: text) else { return [:] }
            guard let mapping = object as? [String: Any] else {
                throw ConfigFileError(.invalid, "config \(url.lastPathComponent): expected a mapping of keys at the top level")
            }
            return mapping
        } catch let error as YamlError {
            throw ConfigFileError(.invalid, "config \(url.lastPathComponent): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
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
        let path = try file ?? ConfigLoader.directory(configDir).appendingPathComponent("alerts.yaml").path
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw ConfigFileError(.unreadable, "cannot read alert rules \(path)") }
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

