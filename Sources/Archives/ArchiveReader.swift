import Events
import Foundation

/// Reads an archive line by line, plain or gzip-compressed (detected from the content, whatever the name).
/// A malformed line is reported with its line number.
public struct ArchiveReader: Sequence {
    public let path: String
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ArchiveError("archive \(path) does not exist") }
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

        public mutating func next() -> Result<ArchiveRecord, ArchiveError>? {
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
                    return .failure(ArchiveError("archive \(file.path): \(error)"))
                }
            }
        }
    }

    static func parse(_ line: ArraySlice<UInt8>, lineNumber: Int) -> Result<ArchiveRecord, ArchiveError> {
        ArchiveRecord.parse(line: line).mapError { ArchiveError("archive line \(lineNumber): \($0)") }
    }
}
