extension IntegrationContract {
    /// What the Sandbox module publishes: each requested run as work on `code.execute`, and run
    /// outcomes on `events`.
    public static let sandbox: [IntegrationContract] = [
        // Work: each requested sandbox run goes to the sandbox workers; outcomes fan out.
        IntegrationContract(
            eventType: CodeExecutionRequested.eventType, exchange: "code.execute", routingKey: "code.execute", kind: .workMessage),
        IntegrationContract(
            eventType: CodeExecutionCompleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "code.execution.completed"),
        IntegrationContract(
            eventType: CodeExecutionFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "code.execution.failed"),
        IntegrationContract(
            eventType: CodeExecutionTimedOut.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "code.execution.timed_out"),
        IntegrationContract(
            eventType: CodeExecutionLimitExceeded.eventType, exchange: IntegrationContract.eventsExchange,
            routingKey: "code.execution.limit_exceeded"),
    ]
}
