import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A blocking GET (for tests that run child processes on their own threads): status (0 when nothing
/// answered) and body.
public func httpGet(_ url: String, timeout: TimeInterval = 10) -> (status: Int, body: String) {
    guard let u = URL(string: url) else { return (0, "") }
    var request = URLRequest(url: u)
    request.timeoutInterval = timeout
    let result = Box()
    let done = DispatchSemaphore(value: 0)
    URLSession.shared.dataTask(with: request) { data, response, _ in
        result.value = ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data ?? Data(), as: UTF8.self))
        done.signal()
    }.resume()
    done.wait()
    return result.value
}

private final class Box: @unchecked Sendable {
    var value: (Int, String) = (0, "")
}

/// Waits until `file` (a child's standard error) holds a line with `prefix` followed by a URL ending in
/// `:PORT/...`, and returns that port; nil if `process` ended first or `deadline` passed.
public func boundPort(in file: URL, prefix: String, process: Process, deadline: Duration = .seconds(120)) -> Int? {
    let end = ContinuousClock.now + deadline
    while ContinuousClock.now < end {
        let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            let rest = line.dropFirst(prefix.count)
            guard let hostEnd = rest.range(of: "://")?.upperBound else { continue }
            let afterScheme = rest[hostEnd...]
            guard let colon = afterScheme.lastIndex(of: ":") else { continue }
            let digits = afterScheme[afterScheme.index(after: colon)...].prefix { $0.isNumber }
            if let port = Int(digits) { return port }
        }
        if !process.isRunning { return nil }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return nil
}
