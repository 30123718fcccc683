/// The host's CPU and memory, as `GET /sandbox/health` reports them beside the pool.
public struct HostUsage: Sendable, Equatable {
    public var cpus: Int
    public var load1: Double
    public var memoryTotalBytes: Int64
    public var memoryAvailableBytes: Int64

    public init(cpus: Int, load1: Double, memoryTotalBytes: Int64, memoryAvailableBytes: Int64) {
        self.cpus = cpus
        self.load1 = load1
        self.memoryTotalBytes = memoryTotalBytes
        self.memoryAvailableBytes = memoryAvailableBytes
    }
}

/// The port the web layer reads host usage through, so it knows no adapter. `ProcHostProbe`
/// (Adapters) reads `/proc`.
public protocol HostProbe: Sendable {
    func usage() -> HostUsage
}
