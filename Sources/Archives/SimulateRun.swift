import Events
import Simulation

/// Runs the simulation and writes every event, merged in event-time order, to an NDJSON archive.
public struct SimulateRun {
    public var world: World
    public init(world: World) { self.world = world }

    public struct Summary: Sendable {
        public var events: Int
        public var byTopic: [String: Int]
    }

    public mutating func write(to writer: ArchiveWriter, isStopped: () -> Bool = { false }, progress: ((Int, Timestamp) -> Void)? = nil) throws -> Summary {
        var byTopic: [String: Int] = [:]
        var value = [UInt8]()
        var n = 0
        while let event = world.next() {
            value.removeAll(keepingCapacity: true)
            EventEncoder.encode(event, into: &value)
            try writer.write(ArchiveRecord(event: event, value: value))
            byTopic[event.topic.rawValue, default: 0] += 1
            n += 1
            if n & 0xFFFF == 0 {
                progress?(n, event.occurredAt)
                if isStopped() { break }
            }
        }
        return Summary(events: n, byTopic: byTopic)
    }
}
