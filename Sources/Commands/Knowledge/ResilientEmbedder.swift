import Foundation

/// An embedder with what every outside call needs, on the same terms as the chat model
/// (`ResilientCalls` with the llm module's policy): a timeout per try, retries with backoff on
/// rate limits, server errors, timeouts and lost connections, and a circuit breaker that fails
/// fast while the service is unhealthy. Refused requests (4xx) are not retried.
public final class ResilientEmbedder: Embedder {
    let base: any Embedder
    let calls: ResilientCalls

    public init(_ base: any Embedder, policy: ResilientLanguageModel.Policy = .init()) {
        self.base = base
        calls = ResilientCalls(policy: policy)
    }

    public var model: String { base.model }
    public var dimensions: Int { base.dimensions }
    public var policy: ResilientLanguageModel.Policy { calls.policy }
    public var breakerState: CircuitBreaker.State { calls.breakerState }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try await calls.run { try await self.base.embed(texts) }
    }

    public func embedCounted(_ texts: [String]) async throws -> Embedded {
        try await calls.run { try await self.base.embedCounted(texts) }
    }
}
