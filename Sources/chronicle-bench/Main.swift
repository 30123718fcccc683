import CLISupport

/// `make bench`: the benchmarks, outside the production binary.
@main
enum BenchMain {
    static func main() async { await CommandLineMain.run(Bench.self) }
}
