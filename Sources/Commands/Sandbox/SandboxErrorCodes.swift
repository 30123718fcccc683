extension DomainError.Code {
    // The Sandbox module's error codes.
    public static let sandboxAttemptStale: Self = "sandbox.attempt_stale"
    public static let sandboxAttemptsExhausted: Self = "sandbox.attempts_exhausted"
    public static let sandboxAttemptsRange: Self = "sandbox.attempts_range"
    public static let sandboxCodeEmpty: Self = "sandbox.code_empty"
    public static let sandboxCodeTooLarge: Self = "sandbox.code_too_large"
    public static let sandboxExecutionExists: Self = "sandbox.execution_exists"
    public static let sandboxExecutionNotFound: Self = "sandbox.execution_not_found"
    public static let sandboxExecutionTerminal: Self = "sandbox.execution_terminal"
    public static let sandboxLanguageUnsupported: Self = "sandbox.language_unsupported"
    public static let sandboxMessageMalformed: Self = "sandbox.message_malformed"
    public static let sandboxNotAnOutcome: Self = "sandbox.not_an_outcome"
    public static let sandboxNotRunning: Self = "sandbox.not_running"
    public static let sandboxTimeoutRange: Self = "sandbox.timeout_range"
}
