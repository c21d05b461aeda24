import Foundation
import Logging
import Synchronization

/// Unbuffered terminal output: results to stdout, progress to stderr (so stdout stays pipeable). With
/// `--log-format json` every stderr line is a JSON entry as the logs are (`JSONLogHandler.write`): progress at
/// level info, other lines at notice, errors at error.
public enum Console {
    public static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    public static func err(_ line: String) {
        if LoggingSetup.json { return JSONLogHandler.write(line, level: .notice) }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A command's failure: `NAME: error: message`.
    static func error(_ command: String, _ message: String) {
        if LoggingSetup.json { return JSONLogHandler.write("\(command): error: \(message)", level: .error) }
        FileHandle.standardError.write(Data("\(command): error: \(message)\n".utf8))
    }

    /// Rewrites the current stderr line when it is a terminal, else prints a line.
    public static func progress(_ line: String) {
        if LoggingSetup.json { return JSONLogHandler.write(line, level: .info) }
        if isatty(2) == 1 {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            err(line)
        }
    }

    public static func endProgress() {
        if isatty(2) == 1 && !LoggingSetup.json { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// A line that stays, after a progress line.
    public static func notice(_ line: String) {
        endProgress()
        err(line)
    }
}

/// Progress lines at most every `interval`, for work that reports far more often than a person reads (from any
/// thread).
final class ThrottledProgress: Sendable {
    private let state: Mutex<(said: ContinuousClock.Instant, any: Bool)>
    let interval: Duration

    init(interval: Duration = .seconds(2)) {
        self.interval = interval
        state = Mutex((ContinuousClock.now, false))
    }

    /// Prints the line when `interval` has passed since the last one (or the start).
    func say(_ line: () -> String) {
        let now = ContinuousClock.now
        let due = state.withLock { s in
            guard now - s.said >= interval else { return false }
            s = (now, true)
            return true
        }
        if due { Console.progress(line()) }
    }

    /// Ends the progress line, if one was printed.
    func end() { if state.withLock({ $0.any }) { Console.endProgress() } }
}
