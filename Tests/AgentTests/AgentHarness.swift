import ConfigFormats
import Glibc
import Netfilter
import PodLab
import TextFiles
import Testing

/// One `pilot-agent proxy` in a network namespace of its own (so Istio's fixed ports are free), with a
/// root directory of its own and `sluice-test-dataplane` as the data plane. Started as root, like a
/// VM install: the agent switches to 1337 itself.
final class AgentHarness: @unchecked Sendable {
    let scratch: PodLab.ScratchNamespace
    let root: String
    private let rootDirectory: TemporaryDirectory
    let dataPlaneLog: String
    private(set) var process: BackgroundProcess?

    static func agentExecutable() throws -> String { try PodLab.builtExecutable(named: "pilot-agent") }
    static func testDataPlane() throws -> String { try PodLab.builtExecutable(named: "sluice-test-dataplane") }

    init() throws {
        scratch = try PodLab.ScratchNamespace(prefix: "sluice-agent", loopbackUp: true)
        // The agent runs as 1337 after its switch: it must reach its root, and the data plane (also 1337) its log.
        rootDirectory = try TemporaryDirectory(prefix: "sluice-agent-root", mode: 0o755)
        root = rootDirectory.path
        dataPlaneLog = root + "/dataplane-events.jsonl"
        let fd = open(dataPlaneLog, O_CREAT | O_WRONLY, 0o666)
        if fd >= 0 { fchmod(fd, 0o666); close(fd) }
    }

    deinit {
        // The data plane is the agent's child and would outlive a killed agent: find it first.
        let dataPlanes = process.map { PodLab.childProcesses(of: $0.pid) } ?? []
        process?.signal(SIGKILL)
        for pid in dataPlanes { kill(pid, SIGKILL) }
        _ = process?.waitForExit(timeout: .seconds(5))
        rootDirectory.remove()
    }

    func environment(_ extra: [String: String] = [:], proxyConfig: JSONObject = [:]) throws -> [String: String] {
        var config = proxyConfig
        if config["binaryPath"] == nil { config["binaryPath"] = .string(try Self.testDataPlane()) }
        var environment = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "POD_NAME": "reviews-v1-abc",
            "POD_NAMESPACE": "default",
            "INSTANCE_IP": "127.0.0.1",
            "SERVICE_ACCOUNT": "reviews",
            // No istiod here: the built-in CA issues the workload certificate.
            "CA_PROVIDER": "local",
            "PROXY_CONFIG": JSONValue.object(config).renderedJSON(pretty: false),
            "SLUICE_TEST_DATAPLANE_LOG": dataPlaneLog,
        ]
        environment.merge(extra) { _, new in new }
        return environment
    }

    @discardableResult
    func start(_ arguments: [String] = ["proxy", "sidecar"], environment: [String: String]? = nil,
               executable: String? = nil, wrapper: [String] = []) throws -> BackgroundProcess {
        let agent = try executable ?? Self.agentExecutable()
        let command = wrapper.isEmpty ? agent : wrapper[0]
        let fullArguments = (wrapper.isEmpty ? [] : Array(wrapper.dropFirst()) + [agent]) + arguments + ["--root", root]
        let started = try BackgroundProcess(command, fullArguments, in: scratch.namespace,
                                            environment: try environment ?? self.environment(), outputPath: root + "/agent.log")
        process = started
        return started
    }

    /// Runs the agent to completion (for commands and startup errors).
    func runToExit(_ arguments: [String], environment: [String: String]? = nil, executable: String? = nil,
                   timeout: Duration = .seconds(20)) throws -> (code: Int32?, output: String) {
        let started = try start(arguments, environment: environment, executable: executable)
        let code = started.waitForExit(timeout: timeout)
        return (code, started.output())
    }

    func get(_ path: String, port: UInt16 = 15020, method: String = "GET", timeout: Duration = .seconds(5)) throws -> LabHTTP.Response {
        try LabHTTP.request(method, path, port: port, in: scratch.namespace, timeout: timeout)
    }

    /// Polls `path` until `accept` holds, for at most `timeout`.
    func waitFor(_ path: String, port: UInt16 = 15020, timeout: Duration = .seconds(10),
                 until accept: (LabHTTP.Response) -> Bool) -> LabHTTP.Response? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let response = try? get(path, port: port, timeout: .seconds(1)), accept(response) { return response }
            usleep(20_000)
        }
        return nil
    }

    func waitUntilReady(timeout: Duration = .seconds(15)) -> Bool {
        waitFor("/healthz/ready", timeout: timeout) { $0.status == 200 } != nil
    }

    /// The data plane's events (`sluice-test-dataplane`'s JSON lines).
    func dataPlaneEvents() -> [JSONValue] {
        guard let text = try? TextFile.read(dataPlaneLog) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONValue.parse(json: String($0)) }
    }

    func adminRequests(path: String) -> [JSONValue] {
        dataPlaneEvents().filter { $0["event"] == "request" && $0["path"]?.stringValue == path }
    }

    var agentOutput: String { process?.output() ?? "" }
}

func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
