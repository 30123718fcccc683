import Commands
import Crypto
import Events
import Foundation
import Logging

/// Replays a recorded agent run through the real worker code (`AgentExecutionRunner`) with a
/// language model that answers from the run's own `AgentLLMCallRecorded` events: no network, and
/// nothing written to the log (the replay's events go to a scratch store). Tools run again, as
/// the worker would run them. The answer compares what the replay did (each tool call, and the
/// outcome) with what the run recorded, by hash; where the replay asked the model something the
/// run never asked, it says at which call and where in the request.
public struct AgentRunReplay: Sendable {
    let prices: ModelPrices
    let sandbox: (runner: any SandboxRunner, limits: SandboxLimits)?
    let logger: Logger

    public init(prices: ModelPrices = .defaults, sandbox: (runner: any SandboxRunner, limits: SandboxLimits)? = nil, logger: Logger) {
        self.prices = prices
        self.sandbox = sandbox
        self.logger = logger
    }

    /// What one side of the comparison did: its tool calls and how it ended.
    public struct Trace: Sendable, Equatable {
        public var modelCalls: Int
        public var toolCalls: [JSONValue]
        public var outcome: JSONValue

        /// sha256 over the canonical JSON of the tool calls and the outcome.
        public var hash: String {
            let canonical = AgentRunReplay.canonical(.object(["tool_calls": .array(toolCalls), "outcome": outcome]))
            return SHA256.hash(data: Data(canonical.utf8)).map { String(format: "%02x", $0) }.joined()
        }

        public var json: JSONValue {
            .object(["hash": .string(hash), "model_calls": .number(Double(modelCalls)), "tool_calls": .array(toolCalls), "outcome": outcome])
        }
    }

    /// Where the replay left the recording.
    public struct Divergence: Sendable, Equatable {
        /// The model call (1-based, in the replayed attempt) that differed.
        public var call: Int
        public var reason: String
        /// The first place the replayed request differs from the recorded one (a JSON pointer).
        public var pointer: String?
        public var recorded: JSONValue?
        public var replayed: JSONValue?

        public var json: JSONValue {
            .object([
                "call": .number(Double(call)), "reason": .string(reason), "pointer": pointer.map(JSONValue.string) ?? .null,
                "recorded": recorded ?? .null, "replayed": replayed ?? .null,
            ])
        }
    }

    public struct Report: Sendable {
        public var executionID: UUID
        /// The attempt whose calls were replayed (the run's last).
        public var attempt: Int
        public var original: Trace
        public var replay: Trace
        public var divergence: Divergence?
        public var identical: Bool { divergence == nil && original.hash == replay.hash }

        public var json: JSONValue {
            .object([
                "execution_id": .string(executionID.uuidString.lowercased()), "attempt": .number(Double(attempt)),
                "identical": .bool(identical), "original": original.json, "replay": replay.json, "divergence": divergence?.json ?? .null,
                "model": .string(RecordedModel.name),
            ])
        }
    }

    public struct NotReplayable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Replays the run whose events (its whole stream, in order) are given.
    public func replay(_ events: [AgentExecutionEvent]) async throws -> Report {
        guard case .requested(let requested)? = events.first else { throw NotReplayable(description: "the stream does not start with its request") }
        guard events.contains(where: Self.isTerminal) else {
            throw NotReplayable(description: "the run has not ended yet; replay it once it has")
        }
        let (attempt, calls) = events.lastAttemptCalls
        let original = Self.trace(events, attempt: attempt)

        let scratch = InMemoryEventStore()
        let stream = AgentExecutionDecider.streamID(requested.executionID).description
        _ = try await scratch.append(
            to: stream, expected: .noStream,
            events: [try NewEvent(requested, id: UUID(), metadata: EventMetadata(correlationID: "replay-\(requested.executionID)"))])
        let model = RecordedModel(calls: calls)
        let runner = AgentExecutionRunner(
            store: scratch, model: model, prices: prices, configuration: .init(maxSteps: max(8, calls.count + 1)), sandbox: sandbox, logger: logger)
        let cause = IntegrationMessage(
            eventID: UUID(), eventType: AgentExecutionRequested.eventType, contractVersion: 1, streamID: stream, streamVersion: 1,
            occurredAt: requested.requestedAt, correlationID: "replay-\(requested.executionID)", causationID: nil, tenantID: nil, data: .null)
        try await runner.run(requested.executionID, cause: cause)
        let replayed = try await scratch.readStream(stream, from: 1, direction: .forward, limit: 10_000).map {
            try AgentExecutionEvent.registry.decode($0, as: AgentExecutionEvent.self)
        }
        var divergence = model.divergence
        let replay = Self.trace(replayed, attempt: 1)
        if divergence == nil, replay.hash != original.hash {
            divergence = Divergence(
                call: replay.modelCalls, reason: "the model's answers were the recorded ones, but a tool answered otherwise or the run ended otherwise",
                pointer: StateJSON.diff(original.json, replay.json).first(where: { $0.path != "/hash" })?.path, recorded: nil, replayed: nil)
        }
        return Report(executionID: requested.executionID, attempt: attempt, original: original, replay: replay, divergence: divergence)
    }

    static func isTerminal(_ event: AgentExecutionEvent) -> Bool {
        switch event {
        case .completed, .failed, .cancelled, .timedOut: true
        default: false
        }
    }

    /// The tool calls of one attempt and the run's ending, without times, ids or attempt numbers.
    static func trace(_ events: [AgentExecutionEvent], attempt: Int) -> Trace {
        var calls = 0
        var tools: [JSONValue] = []
        var outcome: JSONValue = .object(["status": .string("unfinished")])
        for event in events {
            switch event {
            case .llmCallRecorded(let call) where call.attempt == attempt: calls += 1
            case .toolInvoked(let tool) where tool.attempt == attempt:
                tools.append(.object([
                    "step": .number(Double(tool.step)), "tool": .string(tool.tool), "arguments": .string(tool.arguments),
                    "result": .string(tool.result), "is_error": .bool(tool.isError),
                ]))
            case .completed(let completed):
                outcome = .object([
                    "status": .string("completed"), "output": .string(completed.output), "model": .string(completed.model),
                    "prompt_tokens": .number(Double(completed.tokensUsed.promptTokens)),
                    "completion_tokens": .number(Double(completed.tokensUsed.completionTokens)),
                ])
            case .failed(let failed): outcome = .object(["status": .string("failed"), "error": .string(failed.error)])
            case .timedOut: outcome = .object(["status": .string("timed_out")])
            case .cancelled: outcome = .object(["status": .string("cancelled")])
            default: break
            }
        }
        return Trace(modelCalls: calls, toolCalls: tools, outcome: outcome)
    }

    /// JSON with sorted keys and no insignificant space: one text per value.
    static func canonical(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }
}

/// A language model that answers from a run's recorded calls, in order, if and only if it is
/// asked exactly what the run asked; otherwise it records where the conversation diverged and
/// refuses, which ends the replayed run failed.
final class RecordedModel: LanguageModel, @unchecked Sendable {
    static let name = "recorded (the run's own AgentLLMCallRecorded events; no network)"
    private let calls: [AgentLLMCallRecorded]
    private let lock = NSLock()
    private var next = 0
    private var diverged: AgentRunReplay.Divergence?

    init(calls: [AgentLLMCallRecorded]) {
        self.calls = calls
    }

    var divergence: AgentRunReplay.Divergence? { lock.withLock { diverged } }

    func complete(_ request: ChatRequest) async throws -> ChatResponse {
        let asked = try EventCoding.decode(JSONValue.self, from: try EventCoding.encode(request))
        return try lock.withLock {
            let index = next
            next += 1
            guard index < calls.count else {
                diverged = diverged ?? .init(
                    call: index + 1, reason: "the replay asked the model a call the run never made (it recorded \(calls.count))", pointer: nil,
                    recorded: nil, replayed: asked)
                throw LanguageModelError.rejected(status: 409, message: "replay diverged: no recorded call \(index + 1)")
            }
            let call = calls[index]
            guard call.request == asked else {
                let first = StateJSON.diff(call.request, asked).first
                diverged = diverged ?? .init(
                    call: index + 1, reason: "the replayed request differs from the recorded one", pointer: first?.path,
                    recorded: first?.before ?? call.request, replayed: first?.after ?? asked)
                throw LanguageModelError.rejected(status: 409, message: "replay diverged at call \(index + 1)")
            }
            let message = try EventCoding.decode(ChatMessage.self, from: try EventCoding.encode(call.response))
            return ChatResponse(model: call.model, message: message, finishReason: nil, usage: call.usage)
        }
    }
}
