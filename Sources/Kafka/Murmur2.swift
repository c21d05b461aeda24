/// The Java client's murmur2 hash and its default partition choice for keyed messages,
/// which librdkafka's `murmur2_random` partitioner reproduces. Used to predict where a key lands.
public enum Murmur2 {
    public static func hash<Bytes: Collection<UInt8>>(_ data: Bytes) -> UInt32 {
        // Contiguous bytes (arrays and their slices, the usual keys) are read in place, without a copy.
        if let h = data.withContiguousStorageIfAvailable({ hash(buffer: $0) }) { return h }
        return Array(data).withUnsafeBufferPointer { hash(buffer: $0) }
    }

    static func hash(buffer bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        let seed: UInt32 = 0x9747_b28c
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = bytes.count
        var h = seed ^ UInt32(truncatingIfNeeded: length)
        var i = 0
        while i + 4 <= length {
            var k = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
            i += 4
        }
        let rest = length - i
        if rest >= 3 { h ^= UInt32(bytes[i + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(bytes[i + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(bytes[i])
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }

    public static func partition<Bytes: Collection<UInt8>>(for key: Bytes, partitionCount: Int) -> Int {
        Int(hash(key) & 0x7fff_ffff) % partitionCount
    }
}
