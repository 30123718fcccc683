import Commands
import Testing

@Suite struct AppendSignalTests {
    @Test func aSignalBeforeTheWaitIsNotLost() async {
        let signal = AppendSignal()
        let generation = signal.generation
        signal.signal()
        let clock = ContinuousClock()
        let start = clock.now
        // A lost signal would wait the whole 120 s. The bound is far below that but far above a
        // scheduling stall of a loaded machine (17 s was seen with the whole suite in parallel).
        await signal.wait(after: generation, timeout: .seconds(120))
        #expect(start.duration(to: clock.now) < .seconds(60))
    }

    @Test func aSignalWakesAWaiter() async {
        let signal = AppendSignal()
        let generation = signal.generation
        async let woke: Void = signal.wait(after: generation, timeout: .seconds(30))
        try? await Task.sleep(for: .milliseconds(20))
        signal.signal()
        await woke
        #expect(signal.generation == generation + 1)
    }

    @Test func theWaitEndsAtTheTimeout() async {
        let signal = AppendSignal()
        await signal.wait(after: signal.generation, timeout: .milliseconds(10))
        #expect(signal.generation == 0)
    }

    @Test func aCancelledWaitReturns() async {
        let signal = AppendSignal()
        let task = Task { await signal.wait(after: signal.generation, timeout: .seconds(30)) }
        task.cancel()
        await task.value
    }
}
