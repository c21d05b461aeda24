import Events
import Foundation

/// Reads an archive, plain or gzip-compressed (detected from the content, whatever the name): record by record
/// (`Sequence`), or as blocks of complete lines that a caller parses in parallel (`blocks()`). A malformed
/// line is reported with its line number.
///
/// `-` is standard input. Standard input, a pipe (`<(gzip -dc …)`), a FIFO or a device is a stream: it is opened
/// once, by `blocks()`, and read from its start: whatever read it earlier would take those bytes from the run.
public struct ArchiveReader: Sequence {
    public let path: String
    /// Whether the archive is a stream (above): read once, its size unknown.
    public let isStream: Bool

    public init(path: String) throws {
        self.path = path
        if path == "-" {
            isStream = true
            return
        }
        guard FileManager.default.fileExists(atPath: path) else { throw ArchiveError("archive \(path) does not exist") }
        isStream = Self.isStream(path)
        // Readable? (Not a stream: opening a FIFO waits for its writer, and closing it again would end the writer.)
        if !isStream { _ = try GzipFile(path: path, mode: "rb").close() }
    }

    /// Whether `path` leads (through links: `/dev/fd/63` is a pipe) to something other than a regular file or a
    /// directory.
    public static func isStream(_ path: String) -> Bool {
        if path == "-" { return true }
        var status = stat()
        guard stat(path, &status) == 0 else { return false }
        let type = status.st_mode & S_IFMT
        return type != S_IFREG && type != S_IFDIR
    }

    public func makeIterator() -> Iterator { Iterator(blocks: blocks(bytes: 1 << 20)) }

    /// Accept an archive whose gzip stream ends early: its complete lines are read and the cut-off one is
    /// dropped. Otherwise the reader ends with a `truncated` error after the last complete line.
    public var allowTruncated = false

    /// The file's size in bytes (compressed or not), for telling how much of it is read; nil when unknown.
    public var fileSize: Int64? {
        if isStream { return nil }
        return (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
    }

    /// The archive's complete lines, about `bytes` at a time.
    public func blocks(bytes: Int = 4 << 20) -> Blocks {
        let file = path == "-" ? try? GzipFile(readingStandardInputAs: path) : try? GzipFile(path: path, mode: "rb")
        return Blocks(file: file, path: path, size: bytes, allowTruncated: allowTruncated)
    }

    /// Lines of an archive as ranges of one buffer.
    public struct Block: Sendable {
        public let bytes: [UInt8]
        /// Every line, empty ones included, without its newline.
        public let lines: [Range<Int>]
        /// The line number (from 1) of `lines[0]`.
        public let firstLineNumber: Int
        /// How far into the file (its own bytes, compressed or not) reading had gone when this block was read.
        public var fileOffset: Int64 = 0
    }

    public struct Blocks: IteratorProtocol {
        let file: GzipFile?
        let path: String
        let size: Int
        let allowTruncated: Bool
        var carry: [UInt8] = []
        var eof = false
        var lineNumber = 1
        /// Given after the last complete lines of a truncated archive.
        var pending: ArchiveError?
        /// Whether the archive ended early (also with `allowTruncated`).
        public private(set) var truncated = false

        public mutating func next() -> Result<Block, ArchiveError>? {
            if eof, let error = pending {
                pending = nil
                return .failure(error)
            }
            while !eof {
                var buffer = carry
                buffer.reserveCapacity(carry.count + size)
                guard let file else {
                    eof = true
                    break
                }
                do {
                    if try file.read(into: &buffer, max: size) == 0 { eof = true }
                } catch {
                    eof = true
                    return .failure(ArchiveError("archive \(path): \(error)"))
                }
                // A gzip stream cut off: the text after the last newline is a partial line, never a record.
                let cutOff = eof && file.endedEarly
                // Complete lines up to the last newline; the rest waits for the next read.
                let lines = Self.lines(buffer, complete: eof && !cutOff)
                let end = eof && !cutOff ? buffer.count : (lines.last.map { $0.upperBound + 1 } ?? 0)
                carry = Array(buffer[end...])
                if cutOff {
                    truncated = true
                    let last = lineNumber + lines.count - 1
                    if !allowTruncated {
                        pending = ArchiveError("archive \(path) ends early: its gzip stream is cut off after line \(last), the last complete line"
                                               + " (pass --allow-truncated to use the \(last) complete lines)", truncated: true)
                    }
                }
                guard !lines.isEmpty else {
                    if let error = pending {
                        pending = nil
                        return .failure(error)
                    }
                    continue
                }
                defer { lineNumber += lines.count }
                return .success(Block(bytes: buffer, lines: lines, firstLineNumber: lineNumber, fileOffset: file.fileOffset))
            }
            return nil
        }

        /// The lines of `buffer` ending in a newline, and with `complete` the text after the last one too.
        static func lines(_ buffer: [UInt8], complete: Bool) -> [Range<Int>] {
            var lines: [Range<Int>] = []
            buffer.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var start = 0
                while start < b.count, let nl = memchr(base + start, 0x0A, b.count - start) {
                    let end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                    lines.append(start..<end)
                    start = end + 1
                }
                if complete && start < b.count { lines.append(start..<b.count) }
            }
            return lines
        }
    }

    public struct Iterator: IteratorProtocol {
        var blocks: Blocks
        var block: Block?
        var index = 0
        public private(set) var lineNumber = 0

        init(blocks: Blocks) { self.blocks = blocks }

        public mutating func next() -> Result<ArchiveRecord, ArchiveError>? {
            while true {
                if let block, index < block.lines.count {
                    let line = block.lines[index]
                    lineNumber = block.firstLineNumber + index
                    index += 1
                    if line.isEmpty { continue }
                    return ArchiveReader.parse(block.bytes[line], lineNumber: lineNumber)
                }
                switch blocks.next() {
                case nil: return nil
                case let .failure(e): return .failure(e)
                case let .success(b):
                    block = b
                    index = 0
                }
            }
        }
    }

    static func parse(_ line: ArraySlice<UInt8>, lineNumber: Int) -> Result<ArchiveRecord, ArchiveError> {
        ArchiveRecord.parse(line: line).mapError { ArchiveError("archive line \(lineNumber): \($0)") }
    }
}
