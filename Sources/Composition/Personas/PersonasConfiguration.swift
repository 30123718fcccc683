import Commands
import Foundation

/// The Personas module's configuration section.
struct PersonasConfiguration {
    var limits: PromptTemplate.Limits
    var gate: PersonaReleaseDecider.GatePolicy
    var gateWaitSeconds: Int
    var judgeModel: String?
    var workers: Int

    static let settings: [SettingDescription] = [
        .init("chronicle.personas.judge_model", "the agents' default model", "The model the judge asks (offline-judge when no model is configured)"),
        .init("chronicle.personas.workers", "4", "Validations and gates judged at once in this process (1 to 100)"),
        .init("chronicle.personas.gate_labels", "production", "Labels whose moves must pass the regression gate (comma-separated)"),
        .init("chronicle.personas.gate_runs", "3", "Judged responses per evaluation case and version (1 to 10)"),
        .init("chronicle.personas.gate_max_mean_drop", "0.5", "Largest drop of the mean score (0 to 10) a gated move may show"),
        .init("chronicle.personas.gate_max_case_drop", "2", "Largest drop of any one case's score (0 to 10)"),
        .init("chronicle.personas.gate_wait_seconds", "20", "How long a label move waits for its gate before answering 202 (0 to 120)"),
        .init("chronicle.personas.template_max_kib", "64", "Largest template (1 to 1024)"),
        .init("chronicle.personas.template_max_depth", "16", "Deepest nesting of blocks and expressions (1 to 64)"),
        .init("chronicle.personas.template_max_loop_items", "1000", "Most items one loop may iterate (1 to 100000)"),
        .init("chronicle.personas.template_max_iterations", "10000", "Most loop iterations in one render (1 to 1000000)"),
        .init("chronicle.personas.template_max_output_kib", "256", "Largest rendered prompt (1 to 16384)"),
    ]

    init(_ values: Settings) throws {
        limits = PromptTemplate.Limits(
            maxSourceBytes: try values.integer("chronicle.personas.template_max_kib", default: 64, range: 1...1024) << 10,
            maxDepth: try values.integer("chronicle.personas.template_max_depth", default: 16, range: 1...64),
            maxLoopItems: try values.integer("chronicle.personas.template_max_loop_items", default: 1000, range: 1...100_000),
            maxIterations: try values.integer("chronicle.personas.template_max_iterations", default: 10_000, range: 1...1_000_000),
            maxOutputBytes: try values.integer("chronicle.personas.template_max_output_kib", default: 256, range: 1...16384) << 10)
        let labels = values.text("chronicle.personas.gate_labels", default: "production").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let meanDrop = try values.number("chronicle.personas.gate_max_mean_drop", default: 0.5)
        let caseDrop = try values.number("chronicle.personas.gate_max_case_drop", default: 2)
        guard (0...10).contains(meanDrop), (0...10).contains(caseDrop) else {
            throw SettingsError("CHRONICLE_PERSONAS_GATE_MAX_MEAN_DROP and CHRONICLE_PERSONAS_GATE_MAX_CASE_DROP are scores from 0 to 10")
        }
        gate = PersonaReleaseDecider.GatePolicy(
            labels: Set(labels), runs: try values.integer("chronicle.personas.gate_runs", default: 3, range: 1...10), maxMeanDrop: meanDrop,
            maxCaseDrop: caseDrop)
        gateWaitSeconds = try values.integer("chronicle.personas.gate_wait_seconds", default: 20, range: 0...120)
        judgeModel = values.text("chronicle.personas.judge_model")
        workers = try values.integer("chronicle.personas.workers", default: 4, range: 1...100)
    }
}
