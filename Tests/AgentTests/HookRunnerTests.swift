import Foundation
import Testing

@testable import Agent
import Shared
import TestSupport

@Suite("HookRunner: environment, exit status, timeout")
struct HookRunnerTests {
    let context = HookContext(event: .renew, deviceID: "gw-1", certificatePath: "/s/current/cert.pem", keyPath: "/s/current/key.pem",
                              chainPath: "/s/current/chain.pem", serial: "0a1b", notAfter: 1_750_090_000)

    @Test("the hook sees exactly the LANYARD_* variables and PATH")
    func environment() throws {
        let dir = try TempDirectory()
        let out = dir.file("env.txt")
        let outcome = HookRunner.run("env > '\(out)'", context: context, timeout: .seconds(10))
        #expect(outcome == HookOutcome(event: .renew, status: .exited(0)))
        let lines = Set(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init))
        for expected in ["LANYARD_DEVICE_ID=gw-1", "LANYARD_EVENT=renew", "LANYARD_CERT_PATH=/s/current/cert.pem",
                         "LANYARD_KEY_PATH=/s/current/key.pem", "LANYARD_CHAIN_PATH=/s/current/chain.pem",
                         "LANYARD_SERIAL=0a1b", "LANYARD_NOT_AFTER=1750090000"] {
            #expect(lines.contains(expected), "missing \(expected) in \(lines)")
        }
        #expect(lines.contains { $0.hasPrefix("PATH=") })
        // Nothing else of the agent's environment leaks (HOME, the test runner's variables…);
        // sh itself may add PWD, SHLVL and _.
        let foreign = lines.filter { line in
            !line.hasPrefix("LANYARD_") && !line.hasPrefix("PATH=") && !["PWD=", "SHLVL=", "_="].contains { line.hasPrefix($0) }
        }
        #expect(foreign.isEmpty, "unexpected variables: \(foreign)")
    }

    @Test("a failing hook reports its exit status; a signal is reported as such")
    func failure() {
        #expect(HookRunner.run("exit 7", context: context, timeout: .seconds(10)).status == .exited(7))
        #expect(!HookRunner.run("exit 7", context: context, timeout: .seconds(10)).succeeded)
        #expect(HookRunner.run("kill -TERM $$", context: context, timeout: .seconds(10)).status == .signaled(SIGTERM))
        #expect(HookRunner.run("true", context: context, timeout: .seconds(10)).succeeded)
    }

    @Test("a hook that overruns is killed with its whole process group")
    func timeout() throws {
        let dir = try TempDirectory()
        let pidFile = dir.file("child.pid")
        let started = ContinuousClock.now
        // The shell starts a grandchild that would outlive a kill of the shell alone.
        let outcome = HookRunner.run("sleep 30 & echo $! > '\(pidFile)'; wait", context: context, timeout: .seconds(1))
        let elapsed = ContinuousClock.now - started
        #expect(outcome.status == .timedOut(.seconds(1)))
        #expect(outcome.description.contains("timed out"))
        #expect(elapsed < .seconds(5), "took \(elapsed)")
        let grandchild = try #require(Int32(String(contentsOfFile: pidFile, encoding: .utf8).trimmed()))
        // Killed (it may linger as a zombie of init for a moment): wait until it is gone.
        let deadline = Date().addingTimeInterval(5)
        func alive() -> Bool {
            guard kill(grandchild, 0) == 0 else { return false }
            let stat = (try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8)) ?? ""
            return !stat.contains(") Z ")
        }
        while alive() && Date() < deadline { usleep(20_000) }
        #expect(!alive(), "the hook's grandchild survived the timeout")
    }

    @Test("the hook runs with default signal dispositions although the agent ignores SIGTERM")
    func signals() {
        let previous = signal(SIGTERM, SIG_IGN)
        defer { signal(SIGTERM, previous) }
        // With SIGTERM inherited as ignored, the shell would survive and exit 0.
        #expect(HookRunner.run("kill -TERM $$; exit 0", context: context, timeout: .seconds(10)).status == .signaled(SIGTERM))
    }

    @Test("launch runs off the caller's thread and reports the outcome")
    func launch() async {
        let outcome = await withCheckedContinuation { continuation in
            HookRunner.launch("exit 3", context: context, timeout: .seconds(10)) { continuation.resume(returning: $0) }
        }
        #expect(outcome.status == .exited(3))
        #expect(outcome.event == .renew)
    }

    @Test("watchdog interval is half of WATCHDOG_USEC, only for this process")
    func watchdog() {
        #expect(Watchdog.interval(environment: [:], pid: 10) == nil)
        #expect(Watchdog.interval(environment: ["WATCHDOG_USEC": "2000000"], pid: 10) == .seconds(1))
        #expect(Watchdog.interval(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "10"], pid: 10) == .seconds(1))
        #expect(Watchdog.interval(environment: ["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "11"], pid: 10) == nil)
        #expect(Watchdog.interval(environment: ["WATCHDOG_USEC": "junk"], pid: 10) == nil)
    }
}

@Suite("[hooks] configuration")
struct HookConfigurationTests {
    let base = """
        [agent]
        device_id = gw-1
        trust_bundle = /etc/lanyard/bundle.pem

        """

    func load(_ text: String) throws -> Result<AgentConfiguration, ConfigError> {
        let dir = try TempDirectory()
        let path = try dir.write("agent.conf", base + text)
        do { return .success(try AgentConfiguration.load(path: path)) } catch { return .failure(error) }
    }

    @Test("on_renew, on_revoke and timeout are read; defaults are no hooks and 30 s")
    func keys() throws {
        let none = try load("").get()
        #expect(none.hooks == HookConfiguration(onRenew: nil, onRevoke: nil, timeout: .seconds(30)))
        let c = try load("""
            [hooks]
            on_renew = systemctl reload app && echo "renewed $LANYARD_SERIAL"
            on_revoke = logger revoked
            timeout = 5s
            """).get()
        #expect(c.hooks.onRenew == "systemctl reload app && echo \"renewed $LANYARD_SERIAL\"")
        #expect(c.hooks.onRevoke == "logger revoked")
        #expect(c.hooks.timeout == .seconds(5))
        #expect(c.hooks.command(for: .renew) == c.hooks.onRenew)
        #expect(c.hooks.command(for: .revoke) == "logger revoked")
    }

    @Test("unknown keys, empty commands and out-of-range timeouts are errors with a line")
    func errors() throws {
        for (text, line, word) in [("[hooks]\non_renw = x", 5, "on_renw"), ("[hooks]\non_renew =", 5, "empty"),
                                   ("[hooks]\ntimeout = 0s", 5, "timeout"), ("[hooks]\ntimeout = 2h", 5, "timeout")] {
            guard case .failure(let error) = try load(text) else {
                Issue.record("loaded: \(text)")
                continue
            }
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains(word), "\(error)")
        }
    }

    @Test("the sample deploy/agent/agent.conf loads and documents every [hooks] key")
    func sample() throws {
        let path = Broker.repositoryRoot + "/deploy/agent/agent.conf"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for key in ["on_renew", "on_revoke", "timeout", "LANYARD_CERT_PATH", "LANYARD_NOT_AFTER"] { #expect(text.contains(key)) }
        #expect(try AgentConfiguration.load(path: path).hooks.timeout == .seconds(30))
    }
}
