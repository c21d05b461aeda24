import Foundation

/// Unbuffered terminal output: results to stdout, progress to stderr (so stdout stays pipeable).
public enum Console {
    public static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    public static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Rewrites the current stderr line when it is a terminal, else prints a line.
    public static func progress(_ line: String) {
        if isatty(2) == 1 {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            err(line)
        }
    }

    public static func endProgress() {
        if isatty(2) == 1 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
