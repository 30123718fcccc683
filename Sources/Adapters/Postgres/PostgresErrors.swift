import PostgresNIO

/// Reads PostgresNIO's errors without leaking connection details into user-facing text.
enum PostgresErrors {
    static let uniqueViolation = "23505"
    static let undefinedTable = "42P01"

    /// Class 22 (data exception: a value the type refuses) and class 54 (program limit exceeded:
    /// a document over a size limit): the statement will fail the same way every time.
    static func isDataRefusal(_ error: any Error) -> Bool {
        guard let state = sqlState(error) else { return false }
        return state.hasPrefix("22") || state.hasPrefix("54")
    }

    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }

    static func constraint(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.constraintName]
    }

    /// The server's own message where there is one; otherwise the error's kind, for logs.
    static func summary(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            return "\(psql.code)"
        }
        return String(describing: error)
    }

    /// True when the error is the server being unreachable rather than a statement failing.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        guard let psql = error as? PSQLError else { return false }
        return psql.serverInfo == nil
    }
}
