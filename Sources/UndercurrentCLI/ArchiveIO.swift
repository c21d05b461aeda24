import Events
import Foundation

/// Buffered writing of archive lines to a file (gzip-compressed when its name ends in `.gz`), or stdout for "-".
public final class ArchiveWriter {
    private enum Sink {
        case handle(FileHandle)
        case gzip(GzipFile)
    }
    private let sink: Sink
    private var buffer: [UInt8] = []
    private let path: String
    private let tempPath: String?
    public private(set) var records = 0

    /// Writes to a temporary file renamed into place by `close()`, so an interrupted run never leaves a
    /// truncated archive under the final name.
    public init(path: String) throws {
        self.path = path
        if path == "-" {
            sink = .handle(FileHandle.standardOutput)
            tempPath = nil
        } else {
            let temp = path + ".partial"
            if path.hasSuffix(".gz") {
                sink = .gzip(try GzipFile(path: temp, mode: "wb6"))
            } else {
                guard FileManager.default.createFile(atPath: temp, contents: nil) else {
                    throw CLIError("cannot create \(temp)")
                }
                sink = .handle(try FileHandle(forWritingTo: URL(fileURLWithPath: temp)))
            }
            tempPath = temp
        }
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ record: ArchiveRecord) throws {
        record.appendLine(to: &buffer)
        records += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        switch sink {
        case let .handle(h): try h.write(contentsOf: buffer)
        case let .gzip(g): try g.write(buffer)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        try flush()
        guard let tempPath else { return }
        switch sink {
        case let .handle(h):
            try h.synchronize()
            try h.close()
        case let .gzip(g): try g.close()
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: tempPath, toPath: path)
    }
}

/// Reads an archive line by line, plain or gzip-compressed (detected from the content, whatever the name).
/// A malformed line is reported with its line number.
public struct ArchiveReader: Sequence {
    public let path: String
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw CLIError("archive \(path) does not exist") }
        _ = try GzipFile(path: path, mode: "rb").close()  // readable?
        self.path = path
    }

    public func makeIterator() -> Iterator { Iterator(file: try? GzipFile(path: path, mode: "rb")) }

    public struct Iterator: IteratorProtocol {
        let file: GzipFile?
        var buffer: [UInt8] = []
        var position = 0
        var eof = false
        public private(set) var lineNumber = 0

        init(file: GzipFile?) { self.file = file }

        public mutating func next() -> Result<ArchiveRecord, CLIError>? {
            while true {
                if let nl = buffer[position...].firstIndex(of: 0x0A) {
                    let line = buffer[position..<nl]
                    position = nl + 1
                    lineNumber += 1
                    if line.isEmpty { continue }
                    return ArchiveReader.parse(line, lineNumber: lineNumber)
                }
                if eof {
                    guard position < buffer.count else { return nil }
                    let line = buffer[position...]
                    position = buffer.count
                    lineNumber += 1
                    return ArchiveReader.parse(line, lineNumber: lineNumber)
                }
                buffer.removeFirst(position)
                position = 0
                guard let file else { eof = true; continue }
                do {
                    if try file.read(into: &buffer, max: 1 << 20) == 0 { eof = true }
                } catch {
                    eof = true
                    return .failure(CLIError("archive \(file.path): \(error)"))
                }
            }
        }
    }

    static func parse(_ line: ArraySlice<UInt8>, lineNumber: Int) -> Result<ArchiveRecord, CLIError> {
        ArchiveRecord.parse(line: line).mapError { CLIError("archive line \(lineNumber): \($0)") }
    }
}

/// A one-line error for the user.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
