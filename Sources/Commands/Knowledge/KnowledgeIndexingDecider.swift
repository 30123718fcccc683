import Events
import Foundation

/// One indexing run of one document version with one chunking (stream `knowledgeindex-<run id>`).
/// It starts once, records progress, and ends once: completed, failed, cancelled or timed out
/// (by the watchdog, when it made no progress for too long). A redelivered message of a
/// started run continues it (its chunk ids are fixed, so the rows it writes again are the same
/// rows); an ended run takes no more events, so a late or repeated end is a conflict the worker
/// ignores.
public enum KnowledgeIndexingDecider: Decider {
    public enum Status: String, Sendable, Equatable {
        case none, running, completed, failed, cancelled
        case timedOut = "timed_out"
    }

    public enum Command: Sendable, Equatable {
        case start(KnowledgeIndexingStarted)
        case progress(KnowledgeIndexingProgressed)
        case timeOut(KnowledgeIndexingTimedOut)
        case complete(KnowledgeIndexingCompleted)
        case fail(KnowledgeIndexingFailed)
        case cancel(KnowledgeIndexingCancelled)
    }

    public struct State: Sendable, Equatable {
        public var status = Status.none
        public var started: KnowledgeIndexingStarted?
        /// Chunks in the index, once completed.
        public var chunks: Int?
        /// Why it failed, was cancelled or timed out.
        public var reason: String?
        /// Chunks embedded so far, of the total, while it runs.
        public var done: Int?
        public var total: Int?
        /// What the completed run embedded, in the embedder's tokens, and what that cost.
        public var embeddingTokens: Int?
        public var embeddingCost: Double?
    }

    public static let category = "knowledgeindex"
    public static let initialState = State()

    /// The run of a document version cut with `chunking`: the same for every delivery, worker and
    /// retry; new settings make a new run.
    public static func runID(document: UUID, version: Int, chunking: ChunkingSettings) -> UUID {
        DeterministicID.v5(
            namespace: DeterministicID.eventNamespace, name: "knowledge-index/\(document.uuidString.lowercased())/\(version)/\(chunking.fingerprint)")
    }

    public static func streamID(_ runID: UUID) -> StreamID { StreamID(category: category, id: runID) }

    public static func decide(_ command: Command, state: State) throws -> [KnowledgeIndexingEvent] {
        switch command {
        case .start(let started):
            // Started already (a redelivery after a crash): the run goes on, nothing to record.
            guard state.status == .none else {
                if state.status == .running { return [] }
                throw ended(state)
            }
            return [.started(started)]
        case .progress(let progressed):
            guard state.status == .running else { throw ended(state) }
            return [.progressed(progressed)]
        case .timeOut(let timedOut):
            guard state.status == .running else { throw ended(state) }
            return [.timedOut(timedOut)]
        case .complete(let completed):
            guard state.status == .running else { throw ended(state) }
            return [.completed(completed)]
        case .fail(let failed):
            guard state.status == .running || state.status == .none else { throw ended(state) }
            return [.failed(failed)]
        case .cancel(let cancelled):
            if state.status == .cancelled { return [] }
            guard state.status == .running || state.status == .none else { throw ended(state) }
            return [.cancelled(cancelled)]
        }
    }

    public static func evolve(_ state: State, _ event: KnowledgeIndexingEvent) -> State {
        var state = state
        switch event {
        case .started(let started):
            state.status = .running
            state.started = started
        case .completed(let completed):
            state.status = .completed
            state.chunks = completed.chunks
            state.embeddingTokens = completed.embeddingTokens
            state.embeddingCost = completed.embeddingCost
        case .failed(let failed):
            state.status = .failed
            state.reason = failed.reason
        case .cancelled(let cancelled):
            state.status = .cancelled
            state.reason = cancelled.reason
        case .progressed(let progressed):
            state.done = progressed.done
            state.total = progressed.total
        case .timedOut(let timedOut):
            state.status = .timedOut
            state.reason = timedOut.reason
        }
        return state
    }

    static func ended(_ state: State) -> DomainError {
        DomainError(.conflict, code: .knowledgeIndexingEnded, "the indexing run has ended (\(state.status.rawValue))")
    }
}
