extension EventRegistry {
    /// Every event type Chronicle has ever stored. A type is never removed from here: history
    /// must stay readable. Each module contributes its own registry.
    public static let chronicle: EventRegistry = EventRegistry()
        .registering(.agents)
        .registering(.agentExecutions)
        .registering(.identity)
        .registering(.sandbox)
}
