import Commands
import Events
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Which events a hub subscriber receives.
public struct HubFilter: Sendable, Hashable {
    /// One stream, by id; nil for any.
    public var streamID: String?
    /// Streams of one category (`agentexecution` matches `agentexecution-…`); nil for any.
    public var category: String?

    public init(streamID: String? = nil, category: String? = nil) {
        self.streamID = streamID
        self.category = category
    }

    public static let everything = HubFilter()
    public static func stream(_ id: String) -> HubFilter { HubFilter(streamID: id) }
    public static func category(_ name: String) -> HubFilter { HubFilter(category: name) }

    public func matches(_ event: RecordedEvent) -> Bool {
        if let streamID, event.streamID != streamID { return false }
        if let category, !(event.streamID.hasPrefix(category) && event.streamID.dropFirst(category.count).first == "-") { return false }
        return true
    }
}

/// What a subscriber receives.
public enum HubMessage: Sendable, Equatable {
    case event(RecordedEvent)
    /// The subscriber fell more than its buffer behind and was dropped. Subscribing again after
    /// this checkpoint continues exactly where it stopped.
    case dropped(resumeAfter: Checkpoint)
}

/// The push hub: one follower of the global log per process fans events out, by stream or by
/// category, to in-process subscribers (SSE routes, and WebSockets to come). However many
/// subscribers there are, the log is read once.
///
/// - Each subscriber has a bounded buffer. The hub never waits for one: a subscriber whose
///   buffer is full is dropped, and its last message says the checkpoint to resume after.
/// - A subscriber that gives a checkpoint first catches up from the log at its own pace, then
///   joins the live fan-out at the exact checkpoint where its catch-up ended: the switch happens
///   under the hub's lock and only when the catch-up has reached the hub's position, so there is
///   no gap and no duplicate at the seam.
public final class EventHub: Service, Sendable {
    public let store: any EventStore
    let signal: AppendSignal
    /// Messages a subscriber may hold unread before it is dropped.
    public let bufferSize: Int
    let pollInterval: Duration
    let state = Mutex(State())
    let followersGauge: Gauge
    let subscribersGauge: Gauge
    let droppedCounter: Counter
    let catchUpReads: Counter
    let logger: Logger

    struct State {
        /// Where the follower is: every event up to here has been fanned out. Nil until it starts.
        var position: Checkpoint?
        var followers = 0
        var subscribers: [UInt64: HubSubscription] = [:]
        var nextID: UInt64 = 0
    }

    public init(
        store: any EventStore, signal: AppendSignal, bufferSize: Int = 1024, pollInterval: Duration = .milliseconds(500),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance, logger: Logger = Logger(label: "chronicle.hub")
    ) {
        self.store = store
        self.signal = signal
        self.bufferSize = max(1, bufferSize)
        self.pollInterval = pollInterval
        followersGauge = Gauge(label: "chronicle_hub_followers", dimensions: [], factory: metrics)
        subscribersGauge = Gauge(label: "chronicle_hub_subscribers", dimensions: [], factory: metrics)
        droppedCounter = Counter(label: "chronicle_hub_dropped_total", dimensions: [], factory: metrics)
        catchUpReads = Counter(label: "chronicle_hub_catch_up_reads_total", dimensions: [], factory: metrics)
        self.logger = logger
    }

    /// Log followers this hub runs: 1 while it runs, whatever the number of subscribers.
    public var followers: Int { state.withLock { $0.followers } }
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
    /// The checkpoint up to which events have been fanned out; nil before the hub started.
    public var position: Checkpoint? { state.withLock { $0.position } }

    /// Follows the log from its head until cancelled (or graceful shutdown). A log it cannot
    /// read (the database restarting) is retried every second from where the hub is: live
    /// streams pause, and nothing is skipped.
    public func run() async throws {
        state.withLock { $0.followers += 1 }
        followersGauge.record(followers)
        defer {
            let remaining = state.withLock { state -> [HubSubscription] in
                state.followers -= 1
                defer { state.subscribers = [:] }
                return Array(state.subscribers.values)
            }
            for subscription in remaining { subscription.end() }
            followersGauge.record(0)
            subscribersGauge.record(0)
        }
        let follower = EventFollower(store: store, signal: signal, pollInterval: pollInterval, logger: logger)
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let start: Checkpoint
                    if let position = self.position {
                        start = position
                    } else {
                        start = try await (self.store as? any HeadProbe)?.head() ?? .start
                        self.state.withLock { $0.position = $0.position ?? start }
                    }
                    try await follower.follow(from: start) { batch in self.fanOut(batch) }
                } catch is CancellationError {
                    return
                } catch {
                    guard !Task.isCancelled else { return }
                    self.logger.warning("push hub cannot read the log; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Hands a batch to every live subscriber, never waiting: a full buffer drops its subscriber.
    func fanOut(_ batch: [RecordedEvent]) {
        guard let last = batch.last else { return }
        var dropped = 0
        let woken = state.withLock { state -> [HubSubscription] in
            state.position = last.checkpoint
            var woken: [HubSubscription] = []
            for (id, subscription) in state.subscribers {
                switch subscription.offer(batch) {
                case .kept(let wake): if wake { woken.append(subscription) }
                case .overflowed:
                    state.subscribers[id] = nil
                    dropped += 1
                    woken.append(subscription)
                }
            }
            return woken
        }
        if dropped > 0 {
            droppedCounter.increment(by: Int64(dropped))
            logger.notice("hub dropped slow subscribers", metadata: ["hub.dropped": "\(dropped)"])
            subscribersGauge.record(subscriberCount)
        }
        for subscription in woken { subscription.wake() }
    }

    /// A new subscription: live from now when `after` is nil, otherwise every matching event
    /// after `after` (caught up from the log first) and then live.
    public func subscribe(_ filter: HubFilter, after: Checkpoint? = nil) -> HubSubscription {
        let subscription = HubSubscription(hub: self, filter: filter, capacity: bufferSize, after: after)
        // Live from now: join at the hub's position; before the hub has started, `next()` joins
        // it once it has.
        if after == nil { _ = join(subscription, at: nil) }
        return subscription
    }

    /// Registers `subscription` live if `cursor` has reached the hub's position (or, with nil,
    /// at whatever the position is). False if the hub is still ahead, or not started.
    func join(_ subscription: HubSubscription, at cursor: Checkpoint?) -> Bool {
        let joined = state.withLock { state -> Bool in
            guard let position = state.position else { return false }
            if let cursor, cursor < position { return false }
            subscription.goLive(at: cursor ?? position)
            state.nextID += 1
            subscription.id = state.nextID
            state.subscribers[state.nextID] = subscription
            return true
        }
        if joined { subscribersGauge.record(subscriberCount) }
        return joined
    }

    func leave(_ subscription: HubSubscription) {
        let removed = state.withLock { state in
            guard let id = subscription.id else { return false }
            return state.subscribers.removeValue(forKey: id) != nil
        }
        if removed { subscribersGauge.record(subscriberCount) }
    }

    func countCatchUpRead() { catchUpReads.increment() }
}
