import CLISupport
import Commands
import Events
import Foundation

/// Rendering the seeds' persona template: Chronicle's engine (from the parsed form, as renders
/// run, and parsing included) beside Jinja2 rendering the equivalent template, in the same run
/// for the same time. Jinja2 runs in the project's virtualenv (`eventstore/dev/install.sh`), both
/// in its plain `Environment` and in the `SandboxedEnvironment` meant for untrusted templates;
/// the figure also says whether both engines wrote the same text.
struct PersonaBenchmark {
    let report: BenchReport
    let seconds: Int

    static let jinjaTemplate = """
        You are {{ name }}, {{ role }}.

        Personality:
        - Tone: {{ personality.tone }}
        - Traits: {{ personality.traits | join(', ') }}
        - Style: {{ personality.style }}

        {% if few_shot_examples %}Examples:
        {% for example in few_shot_examples %}
        User: {{ example.user_input }}
        Assistant: {{ example.assistant_response }}
        {% endfor %}{% endif %}
        {{ instructions }}

        """

    static let jinjaScript = """
        import json, sys, time
        import jinja2, jinja2.sandbox
        template, context, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
        results = {}
        for name, env in (("plain", jinja2.Environment(keep_trailing_newline=True)),
                          ("sandboxed", jinja2.sandbox.SandboxedEnvironment(keep_trailing_newline=True))):
            compiled = env.from_string(template)
            n, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                for _ in range(200):
                    text = compiled.render(**context)
                n += 200
            results[name] = n / (time.perf_counter() - started)
        results["text"] = text
        print(json.dumps(results))
        """

    /// The project's virtualenv: `CHRONICLE_VENV`, else `.chronicle/venv` from the working directory.
    static func python() -> String? {
        let venv = ProcessInfo.processInfo.environment["CHRONICLE_VENV"] ?? FileManager.default.currentDirectoryPath + "/.chronicle/venv"
        let path = venv + "/bin/python"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    func run() throws {
        let seed = PersonaDefinition.seedExample
        let context = seed.templateContext(variables: [:])
        let template = try PromptTemplate(seed.template)
        let expected = try template.render(context)
        let duration = Duration.seconds(seconds)
        var renders = 0
        var started = ContinuousClock.now
        while ContinuousClock.now - started < duration {
            for _ in 0..<200 { _ = try template.render(context) }
            renders += 200
        }
        let rendered = Double(renders) / Self.seconds(ContinuousClock.now - started)
        var parsed = 0
        started = ContinuousClock.now
        while ContinuousClock.now - started < duration {
            for _ in 0..<200 { _ = try PromptTemplate(seed.template).render(context) }
            parsed += 200
        }
        let parsedRate = Double(parsed) / Self.seconds(ContinuousClock.now - started)
        guard let python = Self.python() else {
            throw CLIError("no Python virtualenv with Jinja2: run eventstore/dev/install.sh (make bootstrap does)")
        }
        let json = String(decoding: try EventCoding.encode(JSONValue.object(context)), as: UTF8.self)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", Self.jinjaScript, Self.jinjaTemplate, json, String(seconds)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let peer = try? JSONSerialization.jsonObject(with: output) as? [String: Any],
            let plain = peer["plain"] as? Double, let sandboxed = peer["sandboxed"] as? Double
        else { throw CLIError("the Jinja2 peer failed: \(String(decoding: output, as: UTF8.self))") }
        let same: JSONValue = .bool(peer["text"] as? String == expected)
        let common: [String: JSONValue] = [
            "template": "the seeds' persona template", "bytes_out": .number(Double(expected.utf8.count)), "seconds": .number(Double(seconds)),
            "same_text_as_jinja2": same,
        ]
        report.emit("personas.render", rendered, unit: "renders/s", common.merging([
            "engine": "chronicle PromptTemplate, parsed once", "jinja2_plain": .number(plain.rounded()), "jinja2_sandboxed": .number(sandboxed.rounded()),
            "ratio_to_jinja2_sandboxed": .number((rendered / sandboxed * 100).rounded() / 100),
            "ratio_to_jinja2_plain": .number((rendered / plain * 100).rounded() / 100),
        ]) { $1 })
        report.emit("personas.parse_and_render", parsedRate, unit: "renders/s", common.merging(["engine": "chronicle PromptTemplate, parsed each time"]) { $1 })
        report.emit("personas.render.jinja2_sandboxed", sandboxed, unit: "renders/s", common.merging(["engine": "Jinja2 SandboxedEnvironment, compiled once"]) { $1 })
        report.emit("personas.render.jinja2_plain", plain, unit: "renders/s", common.merging(["engine": "Jinja2 Environment, compiled once"]) { $1 })
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
