import ArgumentParser
import CoreMetrics
import DashboardHTTP
import Foundation
import Hummingbird
import Kafka
import Logging
import ServiceLifecycle
import Telemetry

/// `--metrics-listen HOST:PORT`, shared by every long-running executable.
public struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9464).") public var metricsListen: String?

    public init() {}

    public func validate() throws {
        if let metricsListen { _ = try ListenAddress.parse(metricsListen, option: "--metrics-listen") }
    }

    /// The endpoint's services (none without the option); `onBound` receives the bound port (useful with port 0).
    func services(_ registry: MetricsRegistry, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in })
        throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        try services(exposition: { registry.exposition() }, logger: logger, onBound: onBound)
    }

    /// The same for metrics assembled by `exposition` (a dashboard's: a metrics file plus its own).
    func services(exposition: @escaping @Sendable () -> String, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in })
        throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        guard let metricsListen else { return [] }
        let address = try ListenAddress.available(metricsListen, option: "--metrics-listen")
        return [MetricsEndpoint.service(exposition, host: address.host, port: address.port, logger: logger) { port in
            Console.err("metrics: \(address.url(port: port))/metrics")
            onBound(port)
        }]
    }
}
