import Events

/// Read-your-writes: a command's response carries the checkpoint it wrote, and a query may wait,
/// bounded, until the read model it reads has passed it.
public enum ReadYourWrites {
    /// Waits until `store`'s checkpoint is at or past `checkpoint`. Returns false if `timeout`
    /// passes first (the caller then answers from the model as it is, and says so).
    public static func wait<S: ProjectionStore>(for store: S, toReach checkpoint: Checkpoint, timeout: Duration) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var pause = Duration.milliseconds(2)
        while true {
            if try await store.checkpoint() >= checkpoint { return true }
            guard clock.now < deadline else { return false }
            try await Task.sleep(for: min(pause, deadline - clock.now))
            pause = min(pause * 2, .milliseconds(50))
        }
    }
}
