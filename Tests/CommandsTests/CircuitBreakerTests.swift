import Commands
import Testing

@Suite struct CircuitBreakerTests {
    static let config = CircuitBreaker.Configuration(failureRateThreshold: 0.5, minimumCalls: 4, windowSeconds: 60, openSeconds: 60)

    @Test func staysClosedBelowTheMinimumNumberOfCalls() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<3 { breaker.record(failed: true, now: Double(t)) }
        #expect(breaker.state == .closed)
    }

    @Test func opensAtAFiftyPercentErrorRate() {
        var breaker = CircuitBreaker(Self.config)
        breaker.record(failed: false, now: 0)
        breaker.record(failed: false, now: 1)
        breaker.record(failed: true, now: 2)
        #expect(breaker.state == .closed)
        breaker.record(failed: true, now: 3)
        #expect(breaker.state == .open(until: 63))
        #expect(breaker.permit(now: 10) == .reject(retryInSeconds: 53))
    }

    @Test func staysClosedBelowTheRate() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<6 { breaker.record(failed: false, now: Double(t)) }
        breaker.record(failed: true, now: 7)
        breaker.record(failed: true, now: 8)
        #expect(breaker.state == .closed)
    }

    @Test func forgetsOutcomesOlderThanTheWindow() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<3 { breaker.record(failed: true, now: Double(t)) }
        // 100 s later the old failures no longer count: one more failure is 1 of 1 < minimum.
        breaker.record(failed: true, now: 100)
        #expect(breaker.state == .closed)
    }

    @Test func halfOpensAfterTheOpenPeriodAndLetsOneTrialThrough() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<4 { breaker.record(failed: true, now: Double(t)) }
        #expect(breaker.permit(now: 63) == .allow)
        #expect(breaker.state == .halfOpen(trialInFlight: true))
        #expect(breaker.permit(now: 63.5) == .reject(retryInSeconds: 1))
    }

    @Test func aSuccessfulTrialClosesIt() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<4 { breaker.record(failed: true, now: Double(t)) }
        _ = breaker.permit(now: 64)
        breaker.record(failed: false, now: 64.5)
        #expect(breaker.state == .closed)
        #expect(breaker.permit(now: 65) == .allow)
    }

    @Test func aFailedTrialOpensItAgain() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<4 { breaker.record(failed: true, now: Double(t)) }
        _ = breaker.permit(now: 64)
        breaker.record(failed: true, now: 65)
        #expect(breaker.state == .open(until: 125))
    }

    @Test func anAbandonedTrialFreesTheSlot() {
        var breaker = CircuitBreaker(Self.config)
        for t in 0..<4 { breaker.record(failed: true, now: Double(t)) }
        _ = breaker.permit(now: 64)
        breaker.abandon()
        #expect(breaker.permit(now: 64.1) == .allow)
    }
}
