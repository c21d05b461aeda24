import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Telemetry

/// A process's `/metrics` (and a `/health` that says it is up) over HTTP.
public enum MetricsEndpoint {
    public static func router(_ exposition: @escaping @Sendable () -> String) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/metrics") { _, _ in DashboardServer.text(exposition()) }
        router.get("/health") { _, _ in DashboardServer.json("{\"status\":\"ok\"}") }
        return router
    }

    public static func service(_ exposition: @escaping @Sendable () -> String, host: String, port: Int, logger: Logger,
                        onBound: @escaping @Sendable (Int) -> Void) -> ServiceGroupConfiguration.ServiceConfiguration {
        let app = Application(router: router(exposition), configuration: .init(address: .hostname(host, port: port), serverName: "undercurrent"),
                              onServerRunning: { channel in onBound(channel.localAddress?.port ?? 0) }, logger: logger)
        return .init(service: app, serviceName: "metrics http://\(host):\(port)")
    }
}

/// Counts requests by route and status, and times them, for `/metrics` (the dashboard's and the endpoint's).
public struct RequestMetrics<Context: RequestContext>: RouterMiddleware {
    let registry: MetricsRegistry

    public init(registry: MetricsRegistry) {
        self.registry = registry
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let status: HTTPResponse.Status
        let response: Response
        do {
            response = try await next(request, context)
            status = response.status
        } catch {
            status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            record(route: context.endpointPath ?? "unmatched", status: status, since: started)
            throw error
        }
        record(route: context.endpointPath ?? "unmatched", status: status, since: started)
        return response
    }

    private func record(route: String, status: HTTPResponse.Status, since started: ContinuousClock.Instant) {
        let labels = [("route", route), ("status", "\(status.code)")]
        registry.counter("undercurrent_http_requests_total", help: "HTTP requests served, by route and status.", labels: labels).increment()
        registry.histogram("undercurrent_http_request_duration_seconds", help: "Time to answer an HTTP request, by route.",
                           labels: [("route", route)], buckets: MetricsRegistry.durationBuckets)
            .recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
    }
}
