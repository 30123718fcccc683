import Adapters
import Commands
import Events
import Foundation
import Testing

/// The escape suite: untrusted Python against the real isolation runner (namespaces, rlimits,
/// seccomp, the real kernel). Each case asserts how the run ended, that the error is readable,
/// and where it can, that the host saw nothing.
@Suite(.serialized) struct SandboxEscapeTests {
    static let runner = ProcessSandboxRunner(
        settings: SandboxSettings(helper: SandboxSettings.helperBesideExecutable(), concurrency: 4, warm: 2), logger: TestServers.logger)

    static func run(_ code: String, timeout: Int = 5, limits: SandboxLimits = .init()) async throws -> SandboxResult {
        try await runner.run(code, limits: limits.with(timeoutSeconds: timeout))
    }

    /// Processes on the host whose command line contains `marker`.
    static func hostProcesses(containing marker: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(marker) ? "\(pid): \(line)" : nil
        }
    }

    @Test func printOneWorksAndReportsOne() async throws {
        let result = try await Self.run("print(1)")
        #expect(result.ending == .exited(0))
        #expect(result.output.stdout == "1\n")
        #expect(result.output.stderr == "")
        #expect(result.limit == nil)
        #expect(result.usage.peakMemoryBytes > 1 << 20)
        #expect(result.inCgroup)
        if case .completed = result.event(executionID: UUID(), attempt: 1, timeoutSeconds: 5, now: Date()) {} else {
            Issue.record("print(1) is not a completed run")
        }
    }

    @Test func anExceptionReportsItsTracebackWithTheUsersLines() async throws {
        let result = try await Self.run("def f():\n    raise ValueError('boom')\nf()\n")
        #expect(result.ending == .exited(1))
        #expect(result.output.stderr.hasPrefix("Traceback (most recent call last):"))
        #expect(result.output.stderr.contains("File \"main.py\", line 2, in f"))
        #expect(result.output.stderr.contains("raise ValueError('boom')"))
        #expect(result.output.stderr.hasSuffix("ValueError: boom\n"))
        #expect(!result.output.stderr.contains("_chronicle"), "the loader's own frame shows")
        guard case .failed(let failed) = result.event(executionID: UUID(), attempt: 1, timeoutSeconds: 5, now: Date()) else {
            Issue.record("an exception is not a failed run")
            return
        }
        #expect(failed.error == "ValueError: boom")
        let syntax = try await Self.run("print(")
        #expect(syntax.ending == .exited(1))
        #expect(syntax.output.stderr.contains("SyntaxError"))
    }

    /// The loader ends the interpreter itself (faster than its full teardown): what a program can
    /// see of an exit must be as in plain Python.
    @Test func exitCodesAtexitAndThreadsBehaveAsInPlainPython() async throws {
        #expect(try await Self.run("import sys\nsys.exit(3)").ending == .exited(3))
        let message = try await Self.run("import sys\nsys.exit('bye')")
        #expect(message.ending == .exited(1) && message.output.stderr == "bye\n")
        #expect(try await Self.run("raise SystemExit").ending == .exited(0))
        let atexit = try await Self.run("import atexit\natexit.register(lambda: print('atexit ran'))\nprint('main', end=' ')")
        #expect(atexit.output.stdout == "main atexit ran\n")
        let thread = try await Self.run("""
            import threading, time
            def work():
                time.sleep(0.2)
                print('thread done')
            threading.Thread(target=work).start()
            print('main done')
            """)
        #expect(thread.output.stdout == "main done\nthread done\n")
        let buffered = try await Self.run("import sys\nsys.stdout.write('no newline')")
        #expect(buffered.output.stdout == "no newline")
    }

    @Test(arguments: [
        ("socket.AF_INET", "socket.SOCK_STREAM", "127.0.0.1", 5432),
        ("socket.AF_INET", "socket.SOCK_DGRAM", "127.0.0.1", 53),
        ("socket.AF_INET", "socket.SOCK_STREAM", "1.1.1.1", 443),
        ("socket.AF_INET", "socket.SOCK_DGRAM", "8.8.8.8", 53),
        ("socket.AF_INET6", "socket.SOCK_STREAM", "::1", 5432),
        ("socket.AF_PACKET", "socket.SOCK_RAW", "", 0),
        ("socket.AF_NETLINK", "socket.SOCK_RAW", "", 0),
    ])
    func noSocketButUnixOnes(family: String, type: String, host: String, port: Int) async throws {
        let connect = host.isEmpty ? "" : "; s.connect(('\(host)', \(port))); s.send(b'x')"
        let result = try await Self.run("import socket\ns = socket.socket(\(family), \(type))\(connect)\nprint('connected')")
        #expect(result.ending == .exited(1))
        #expect(!result.output.stdout.contains("connected"))
        #expect(result.output.stderr.contains("PermissionError: [Errno 1] Operation not permitted"), "\(result.output.stderr)")
        // A Unix socket pair still works (libraries use them locally).
        let local = try await Self.run("import socket\na, b = socket.socketpair()\na.send(b'ok')\nprint(b.recv(2).decode())")
        #expect(local.output.stdout == "ok\n", "\(local.output.stderr)")
    }

    @Test func theNetworkNamespaceHasNoRouteOut() async throws {
        let result = try await Self.run("print([l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]])")
        #expect(result.output.stdout == "['lo']\n", "\(result.output.stderr)")
    }

    @Test func aForkBombMeetsTheProcessLimitAndLeavesNothingBehind() async throws {
        let result = try await Self.run("import os\nwhile True:\n    os.fork()\n", timeout: 10)
        #expect(result.ending != .timedOut)
        #expect(result.limit == "processes")
        #expect(result.output.stderr.contains("BlockingIOError: [Errno 11] Resource temporarily unavailable"))
        guard case .limitExceeded(let exceeded) = result.event(executionID: UUID(), attempt: 1, timeoutSeconds: 10, now: Date()) else {
            Issue.record("a fork bomb is not a limit_exceeded run")
            return
        }
        #expect(exceeded.limit == "processes")
        // The host still forks, and the sandbox still runs code.
        #expect(try await Self.run("print(2)").output.stdout == "2\n")
    }

    @Test func allocatingTwoGiBMeetsTheMemoryLimit() async throws {
        let result = try await Self.run("x = bytearray(2 * 1024 ** 3)\nprint('allocated')")
        #expect(result.ending == .exited(1))
        #expect(result.limit == "memory")
        #expect(result.output.stderr.hasSuffix("MemoryError\n"))
        #expect(result.usage.peakMemoryBytes < 512 << 20)
    }

    /// Each process stays under its address-space limit, but eight of 200 MiB do not fit the run's
    /// cgroup (512 MiB plus the two tmpfs): the kernel's OOM killer acts inside the run only.
    @Test func manyProcessesTogetherMeetTheRunsMemoryLimit() async throws {
        let result = try await Self.run("""
            import os, time
            children = []
            for _ in range(8):
                pid = os.fork()
                if pid == 0:
                    block = bytearray(b'\\x01') * (200 << 20)
                    time.sleep(3)
                    os._exit(0)
                children.append(pid)
            print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children))
            """, timeout: 20)
        #expect(result.inCgroup, "runs are not in a cgroup here")
        #expect(result.limit == "memory", "\(result.output.stdout)\(result.output.stderr)")
        #expect(result.output.stdout.contains("-9"), "no child was killed: \(result.output.stdout)")
        #expect(try await Self.run("print(3)").output.stdout == "3\n")
    }

    /// A helper killed while it waited (a server stopping with warm runners) leaves its empty
    /// cgroup; the next helper to finish a run removes it.
    @Test func aKilledRunnersCgroupIsRemovedByTheNext() async throws {
        let own = (try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)).split(separator: "\n")
            .first { $0.contains(":memory:") }.map { String($0.split(separator: ":", maxSplits: 2)[2]) } ?? "/"
        let parent = "/sys/fs/cgroup/memory\(own == "/" ? "" : own)/chronicle-sandbox"
        let helper = Process()
        helper.executableURL = URL(fileURLWithPath: SandboxSettings.helperBesideExecutable())
        helper.standardInput = Pipe()
        helper.standardOutput = FileHandle.nullDevice
        try helper.run()
        let dir = "\(parent)/run-\(helper.processIdentifier)"
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: dir) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(FileManager.default.fileExists(atPath: dir), "the helper made no cgroup at \(dir)")
        await CLIProcess.stop(helper, signal: SIGKILL)
        // The killed helper's cgroup stays behind. (A helper of a test running beside this one may
        // sweep it before the runner below does; either way it is a later helper that removes it.)
        let runner = ProcessSandboxRunner(
            settings: SandboxSettings(helper: SandboxSettings.helperBesideExecutable(), concurrency: 1, warm: 0), logger: TestServers.logger)
        #expect(try await runner.run("print(4)", limits: .init()).output.stdout == "4\n")
        // The sweep runs after that run's answer, as the helper leaves.
        for _ in 0..<500 where FileManager.default.fileExists(atPath: dir) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!FileManager.default.fileExists(atPath: dir), "the dead runner's cgroup is still there")
    }

    @Test func writingAOneGiBFileMeetsTheFileSizeLimit() async throws {
        let result = try await Self.run("""
            with open('big', 'wb') as f:
                for _ in range(1024):
                    f.write(b'\\0' * (1 << 20))
            """)
        #expect(result.ending == .exited(1))
        #expect(result.limit == "file_size")
        #expect(result.output.stderr.contains("OSError: [Errno 27] File too large"))
        // Many smaller files fill the private workspace instead: the disk limit.
        let disk = try await Self.run("""
            for n in range(16):
                with open(f'part{n}', 'wb') as f:
                    for _ in range(16):
                        f.write(b'\\0' * (1 << 20))
            """)
        #expect(disk.limit == "disk")
        #expect(disk.output.stderr.contains("No space left on device"))
    }

    @Test func theHostsSecretsAndTheServersOwnFilesAreNotThere() async throws {
        let paths = [
            "/etc/shadow", "/etc/passwd-", "/root/.bashrc", TestServers.root.appendingPathComponent("Package.swift").path,
            TestServers.root.appendingPathComponent(".chronicle/jwt-secret").path, "/home", "/var/lib/postgresql",
        ]
        for path in paths {
            let result = try await Self.run("print(open(\(Self.pythonString(path)), 'rb').read()[:20])")
            #expect(result.ending == .exited(1), "\(path) was readable: \(result.output.stdout)")
            #expect(result.output.stderr.contains("FileNotFoundError") || result.output.stderr.contains("IsADirectoryError"), "\(path): \(result.output.stderr)")
        }
        // Only the sandbox's own processes are visible, and not init's memory or environment.
        let processes = try await Self.run("""
            import os
            print(sorted(p for p in os.listdir('/proc') if p.isdigit()))
            open('/proc/1/environ', 'rb').read()
            """)
        #expect(processes.output.stdout == "['1', '2']\n")
        #expect(processes.output.stderr.contains("PermissionError"), "\(processes.output.stderr)")
        // Who am I: nobody, with no capabilities.
        let identity = try await Self.run("""
            import os
            print(os.getuid(), os.getgid(), os.getgroups())
            print([l for l in open('/proc/self/status') if l.startswith(('CapEff', 'NoNewPrivs', 'Seccomp:'))])
            print(sorted(os.environ))
            """)
        #expect(identity.output.stdout.hasPrefix("65534 65534 []\n"), "\(identity.output.stdout)\(identity.output.stderr)")
        #expect(identity.output.stdout.contains("'CapEff:\\t0000000000000000\\n'"))
        #expect(identity.output.stdout.contains("'NoNewPrivs:\\t1\\n'"))
        #expect(identity.output.stdout.contains("'Seccomp:\\t2\\n'"))
        #expect(identity.output.stdout.hasSuffix("['HOME', 'LANG', 'PATH']\n"))
    }

    @Test func writingOutsideTheWorkspaceAndTmpIsRefused() async throws {
        let marker = "chronicle-escape-\(UUID().uuidString.prefix(8))"
        for path in ["/\(marker)", "/usr/\(marker)", "/etc/\(marker)", "/dev/\(marker)", "/proc/\(marker)"] {
            let result = try await Self.run("open(\(Self.pythonString(path)), 'w').write('x')")
            #expect(result.ending == .exited(1), "\(path) was writable")
            #expect(
                result.output.stderr.contains("Read-only file system") || result.output.stderr.contains("PermissionError")
                    || result.output.stderr.contains("FileNotFoundError"), "\(path): \(result.output.stderr)")
        }
        let allowed = try await Self.run("""
            open('/workspace/\(marker)', 'w').write('a')
            open('/tmp/\(marker)', 'w').write('b')
            print(open('/workspace/\(marker)').read() + open('/tmp/\(marker)').read())
            """)
        #expect(allowed.output.stdout == "ab\n", "\(allowed.output.stderr)")
        // Nothing of it reached the host.
        #expect(!FileManager.default.fileExists(atPath: "/tmp/\(marker)"))
        #expect(!FileManager.default.fileExists(atPath: "/\(marker)"))
    }

    @Test func ptraceMountAndUnshareThroughCtypesFailWithEPERM() async throws {
        let result = try await Self.run("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            for name, call in [
                ('ptrace', lambda: libc.ptrace(0, 0, None, None)),
                ('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),
                ('unshare', lambda: libc.unshare(0x10000000)),
                ('chroot', lambda: libc.chroot(b'/tmp')),
            ]:
                print(name, call(), ctypes.get_errno())
            libc.ptrace.restype = ctypes.c_long
            if libc.ptrace(0, 0, None, None) == -1:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            """)
        #expect(result.output.stdout == "ptrace -1 1\nmount -1 1\nunshare -1 1\nchroot -1 1\n", "\(result.output.stderr)")
        #expect(result.output.stderr.hasSuffix("PermissionError: [Errno 1] Operation not permitted\n"))
        #expect(result.ending == .exited(1))
    }

    @Test func anInfiniteLoopAndASleepAreStoppedAtTheWallLimit() async throws {
        // A runner of its own: the shared one queues runs behind the suite's other tests, and the
        // time measured here would include that wait.
        let runner = ProcessSandboxRunner(
            settings: SandboxSettings(helper: SandboxSettings.helperBesideExecutable(), concurrency: 1, warm: 0), logger: TestServers.logger)
        for code in ["while True:\n    pass", "import time\nprint('going to sleep', flush=True)\ntime.sleep(60)"] {
            let started = ContinuousClock.now
            let result = try await runner.run(code, limits: SandboxLimits().with(timeoutSeconds: 1))
            #expect(result.ending == .timedOut)
            #expect(result.limit == nil)
            #expect(result.usage.durationMs >= 1000 && result.usage.durationMs < 3000, "\(result.usage)")
            #expect(ContinuousClock.now - started < .seconds(10))
            guard case .timedOut(let event) = result.event(executionID: UUID(), attempt: 1, timeoutSeconds: 1, now: Date()) else {
                Issue.record("not a timed-out run")
                continue
            }
            #expect(event.timeoutSeconds == 1)
        }
        let sleeper = try await Self.run("import time\nprint('going to sleep', flush=True)\ntime.sleep(60)", timeout: 1)
        #expect(sleeper.output.stdout == "going to sleep\n", "output before the limit is kept")
        // The loop's CPU time is measured even though it was killed (how much it got of a busy
        // machine's cores varies; a run killed without being reaped would report about 0). Three
        // seconds of wall time: with the whole suite running beside it, one second once gave the
        // loop 48 ms of CPU.
        let loop = try await Self.run("while True:\n    pass", timeout: 3)
        #expect(loop.usage.cpuMs >= 50, "the loop's CPU time is not measured: \(loop.usage)")
    }

    @Test func aHundredMegabytesOfStdoutIsCappedWithAMarker() async throws {
        let result = try await Self.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\nprint('done', file=sys.stderr)")
        #expect(result.ending == .exited(0))
        #expect(result.output.stdoutBytes == 100_000_000)
        #expect(result.output.stdout.hasPrefix(String(repeating: "x", count: 1000)))
        #expect(result.output.stdout.hasSuffix("\n[output truncated: 100000000 bytes written, the first 1048576 kept]"))
        #expect(result.output.stdout.utf8.count < (1 << 20) + 100)
        #expect(result.output.stderr == "done\n")
    }

    /// The child sleeps in the interpreter (the sandbox has no /bin/sleep: its /usr holds only
    /// what the interpreter needs).
    @Test func aChildThatOutlivesItsParentDiesWithTheRun() async throws {
        let marker = "\(Int.random(in: 1_000_000...9_999_999))"
        let result = try await Self.run("""
            import os, sys
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(\(marker))'])
            print('parent leaves')
            """)
        #expect(result.ending == .exited(0))
        #expect(result.output.stdout == "parent leaves\n")
        #expect(result.usage.durationMs < 3000)
        try await Task.sleep(for: .milliseconds(200))
        #expect(Self.hostProcesses(containing: "time.sleep(\(marker))").isEmpty)
    }

    /// Issue 17, finding 7: /usr/local (with the host's /usr/local/etc and /usr/local/bin) was
    /// mounted; /proc/1/cmdline showed the helper's host path and limits; /proc/self/cgroup the
    /// host's cgroup path; and the program could write to an inherited fd 4 and have its own run
    /// reported as limit_exceeded.
    @Test func theSandboxShowsNothingOfItsHostOrItsSupervisor() async throws {
        let result = try await Self.run("""
            import os
            print(os.path.exists('/usr/local'), sorted(os.listdir('/usr/bin')))
            print(open('/proc/1/cmdline', 'rb').read().rstrip(b'\\0'))
            print(open('/proc/1/comm').read().strip())
            print(sorted(set(line.rsplit(':', 1)[1].strip() for line in open('/proc/self/cgroup'))))
            print(sorted(os.listdir('/proc/self/fd')))
            """)
        #expect(result.ending == .exited(0), "\(result.output.stderr)")
        let lines = result.output.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(result.output.stdout)\(result.output.stderr)")
        guard lines.count == 5 else { return }
        #expect(lines[0].hasPrefix("False ['python3"), "\(lines[0])")
        #expect(!lines[0].contains("sleep") && !lines[0].contains("sh'"), "host tools are visible: \(lines[0])")
        #expect(lines[1] == "b'init'", "init's command line: \(lines[1])")
        #expect(lines[2] == "init")
        #expect(lines[3] == "['/']", "cgroup paths: \(lines[3])")
        // 0, 1 and 2 (and, where the listing shows it, the descriptor listdir itself opened).
        #expect(["['0', '1', '2']", "['0', '1', '2', '3']"].contains(lines[4]), "descriptors: \(lines[4])")
    }

    @Test func aProgramCannotReportItsOwnRunAsOverALimit() async throws {
        let result = try await Self.run("""
            import os
            for fd in range(3, 64):
                try: os.write(fd, b'memory\\n')
                except OSError: pass
            raise SystemExit(3)
            """)
        #expect(result.ending == .exited(3))
        #expect(result.limit == nil)
        // A limit the loader recognises is still named.
        let greedy = try await Self.run("x = bytearray(4 * 1024 ** 3)")
        #expect(greedy.limit == "memory")
        #expect(greedy.ending == .exited(1))
    }

    @Test func twentyConcurrentRunsEachHaveTheirOwnLimitsAndFiles() async throws {
        let runner = ProcessSandboxRunner(
            settings: SandboxSettings(helper: SandboxSettings.helperBesideExecutable(), concurrency: 20, warm: 0), logger: TestServers.logger)
        let results = try await withThrowingTaskGroup(of: (Int, SandboxResult).self) { group in
            for n in 0..<20 {
                group.addTask {
                    let limits = SandboxLimits(memoryBytes: Int64(256 + n) << 20, processes: 16 + n).with(timeoutSeconds: 20)
                    let result = try await runner.run("""
                        import os, resource, time
                        open('/workspace/mine-\(n)', 'w').write('\(n)')
                        open('/tmp/mine-\(n)', 'w').write('\(n)')
                        time.sleep(0.5)
                        print(resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, resource.getrlimit(resource.RLIMIT_NPROC)[0])
                        print(sorted(os.listdir('/workspace')), sorted(os.listdir('/tmp')))
                        """, limits: limits)
                    return (n, result)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 20)
        for (n, result) in results {
            #expect(result.ending == .exited(0), "run \(n): \(result.output.stderr)")
            #expect(result.output.stdout == "\(256 + n) \(16 + n)\n['mine-\(n)'] ['mine-\(n)']\n", "run \(n)")
        }
    }

    @Test func warmRunnersAreUsedAndReplaced() async throws {
        let runner = ProcessSandboxRunner(
            settings: SandboxSettings(helper: SandboxSettings.helperBesideExecutable(), concurrency: 2, warm: 2), logger: TestServers.logger)
        var health = await runner.health()
        for _ in 0..<100 where health.warm < 2 {
            try await Task.sleep(for: .milliseconds(20))
            health = await runner.health()
        }
        #expect(health.warm == 2 && health.warmTarget == 2 && health.problem == nil)
        for n in 0..<5 {
            #expect(try await runner.run("print(\(n))", limits: .init()).output.stdout == "\(n)\n")
        }
        health = await runner.health()
        #expect(health.runs == 5)
        // A run that only changes the wall time uses a warm runner; other limits start one cold.
        #expect(try await runner.run("import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)", limits: SandboxLimits(memoryBytes: 300 << 20)).output.stdout == "300\n")
    }

    @Test func aMissingHelperIsAClearError() async throws {
        let runner = ProcessSandboxRunner(settings: SandboxSettings(helper: "/nonexistent/chronicle-sandbox", warm: 0), logger: TestServers.logger)
        await #expect(throws: SandboxUnavailable.self) { try await runner.run("print(1)", limits: .init()) }
    }

    static func pythonString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
