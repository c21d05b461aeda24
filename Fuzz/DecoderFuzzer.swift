// libFuzzer entry point for the event decoder and validator, compiled into the Events module by
// scripts/soak.sh (swiftc -sanitize=fuzzer,address). Any input: no crash, no sanitizer report, and an
// accepted event re-encodes to a value that decodes to the same event.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for topic in [InputTopic.billing, .payments, .engagement] {
        if case let .success(event) = EventDecoder.decode(bytes, topic: topic) {
            let again = EventDecoder.decode(EventEncoder.encode(event), topic: topic)
            guard case let .success(e2) = again, e2 == event else { fatalError("re-encoded event does not decode to itself") }
        }
    }
    _ = ArchiveRecord.parse(line: bytes[...])
    return 0
}
