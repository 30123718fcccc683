@preconcurrency import Glibc
import Foundation
import Synchronization
import Testing

/// Where each test is while it waits, for the day a run hangs: the helpers that wait (databases,
/// child processes, HTTP, private servers) register a step while they wait, and a thread of its
/// own prints each step that has lasted over eight minutes (longer than any test takes, the API
/// fuzzing included) to standard error, with its test, then again every eight minutes. A hung run
/// then names what it waits on instead of going quiet. A step of 20 minutes or a run of 25 ends
/// the run (exit 70).
enum Watchdog {
    struct Step: Sendable {
        let test: String
        let what: String
        let since: ContinuousClock.Instant
    }

    static let report: Duration = .seconds(480)
    static let giveUp: Duration = .seconds(1200)
    static let giveUpRun: Duration = .seconds(1500)
    private static let processStart = ContinuousClock.now
    private static let steps = Mutex<[Int: Step]>([:])
    private static let counter = Atomic<Int>(0)
    private static let started: Bool = {
        // Line-buffered: a hang must not keep the last lines of the output in a buffer.
        setvbuf(Glibc.stdout, nil, _IOLBF, 0)
        _ = processStart
        Thread { watch() }.start()
        return true
    }()

    static func step<T>(_ what: @autoclosure () -> String, _ body: () async throws -> T) async rethrows -> T {
        _ = started
        let id = counter.add(1, ordering: .relaxed).newValue
        let step = Step(test: Test.current?.name ?? "(no test)", what: what(), since: .now)
        steps.withLock { $0[id] = step }
        defer { _ = steps.withLock { $0.removeValue(forKey: id) } }
        return try await body()
    }

    private static func watch() {
        var reported: [Int: ContinuousClock.Instant] = [:]
        while true {
            sleep(30)
            let now = ContinuousClock.now
            let current = steps.withLock { $0 }
            reported = reported.filter { current[$0.key] != nil }
            for (id, step) in current.sorted(by: { $0.key < $1.key }) where now - step.since > report {
                if let last = reported[id], now - last < report { continue }
                reported[id] = now
                let seconds = Int((now - step.since).components.seconds)
                FileHandle.standardError.write(Data("watchdog: \(step.test) has waited \(seconds) s in: \(step.what)\n".utf8))
            }
            // A step this old, or a run this long (a whole run takes under 10 minutes), is a hang,
            // not a slow machine: end the run now, saying where every test stands, rather than
            // leave CI to its own time limit with nothing said. Exiting also flushes the output
            // that swift-test still buffers, so the tests that never finished show.
            if current.values.contains(where: { now - $0.since > giveUp }) || now - processStart > giveUpRun {
                FileHandle.standardError.write(Data("watchdog: ending a run that hangs (\(Int((now - processStart).components.seconds)) s)\n".utf8))
                for step in current.values.sorted(by: { $0.since < $1.since }) {
                    let seconds = Int((now - step.since).components.seconds)
                    FileHandle.standardError.write(Data("watchdog: hung: \(step.test), \(seconds) s in: \(step.what)\n".utf8))
                }
                exit(70)
            }
        }
    }
}
