extension IntegrationContract {
    /// What the Agents module publishes: agent changes and run outcomes on `events`, and each
    /// requested run as work on `agent.execute`.
    public static let agents: [IntegrationContract] = [
        IntegrationContract(eventType: AgentCreated.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.created"),
        IntegrationContract(
            eventType: AgentInstructionsChanged.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.instructions_changed"),
        IntegrationContract(eventType: AgentDeleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.deleted"),
        IntegrationContract(eventType: AgentRenamed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.renamed"),
        IntegrationContract(
            eventType: AgentModelSettingsChanged.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.model_settings_changed"),
        IntegrationContract(eventType: AgentPluginAdded.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.plugin_added"),
        IntegrationContract(eventType: AgentPluginRemoved.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.plugin_removed"),
        // Work: the relay hands each requested run to the agent workers.
        IntegrationContract(
            eventType: AgentExecutionRequested.eventType, exchange: "agent.execute", routingKey: "agent.execute", kind: .workMessage),
        IntegrationContract(
            eventType: AgentExecutionStarted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.execution.started"),
        IntegrationContract(
            eventType: AgentExecutionCompleted.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.execution.completed"),
        IntegrationContract(
            eventType: AgentExecutionFailed.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.execution.failed"),
        IntegrationContract(
            eventType: AgentExecutionCancelled.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.execution.cancelled"),
        IntegrationContract(
            eventType: AgentExecutionTimedOut.eventType, exchange: IntegrationContract.eventsExchange, routingKey: "agent.execution.timed_out"),
    ]
}
