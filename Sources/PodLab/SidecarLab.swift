import Capture
import Netfilter
import Synchronization
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// The whole sidecar in a lab: a pod netns with an app (UID 1000) serving HTTP on 8080, `sluice-init`
/// with the injector's default flags, `pilot-agent proxy sidecar` started as root (it switches itself
/// to 1337) which starts `sluice-proxy`; and a peer netns with an HTTP service on 198.51.100.1:80 /
/// [2001:db8:2::1]:80 and the app's own "Service" on 203.0.113.1:8080, which leads back to the pod.
/// Shared by the demo and the end-to-end tests.
public final class SidecarLab: @unchecked Sendable {
    public struct Executables: Sendable {
        public var sluiceInit: String
        public var pilotAgent: String
        public var sluiceProxy: String

        public init(sluiceInit: String, pilotAgent: String, sluiceProxy: String) {
            self.sluiceInit = sluiceInit
            self.pilotAgent = pilotAgent
            self.sluiceProxy = sluiceProxy
        }

        /// `$SLUICE_INIT`, `$PILOT_AGENT`, `$SLUICE_PROXY`, or the products next to the running executable.
        public static func built() throws -> Executables {
            Executables(
                sluiceInit: try PodLab.sluiceInitExecutable(),
                pilotAgent: try PodLab.builtExecutable(named: "pilot-agent", override: "PILOT_AGENT"),
                sluiceProxy: try PodLab.builtExecutable(named: "sluice-proxy", override: "SLUICE_PROXY"))
        }
    }

    public static let appPort: UInt16 = 8080
    public static let podIP = PodLab.podIPv4
    /// The peer's HTTP service, outside the mesh.
    public static let peerService = Endpoint(PodLab.externalIPv4[0], 80)
    public static let peerServiceIPv6 = Endpoint(PodLab.externalIPv6[0], 80)
    /// The app's own Service address: the peer ("the node") relays it back to the pod's 8080.
    public static let appService = Endpoint(PodLab.externalIPv4[1], 8080)

    public let lab: PodLab
    public let root: String
    private let rootDirectory: TemporaryDirectory
    public let app: LabHTTPServer
    public let peer: LabHTTPServer
    public let serviceRelay: LabTCPRelay
    /// What sluice-init printed when it programmed the pod.
    public let captureOutput: String
    public let agent: BackgroundProcess
    private let tornDown = Mutex(false)

    /// Builds the pod and the peer, applies the capture rules and starts the agent. The agent's
    /// ProxyConfig names sluice-proxy explicitly, so an Envoy installed on the host is never picked.
    public init(
        prefix: String = "sluice-sidecar", executables: Executables, proxyConfig: [String: String] = [:],
        environment extra: [String: String] = [:], captureArguments: [String] = []
    ) throws {
        var layout = PodLab.Layout()
        layout.proxyProbeListeners = false
        layout.dnsProxyProbeListeners = false
        // The agent and the proxy own 15020/15021/15090 and the app 8080 in this lab; the peer's
        // ports are the lab services'.
        layout.ports.podTCP = []
        layout.ports.peerTCP = []
        // The peer's port 53 is the cluster DNS server a DNS test starts there.
        layout.ports.peerUDP = []
        lab = try PodLab(prefix: prefix, layout: layout)
        // The agent drops to 1337 and must still reach its root and the log it writes there.
        do {
            rootDirectory = try TemporaryDirectory(prefix: "\(prefix)-root", mode: 0o755)
        } catch {
            lab.tearDown()
            throw error
        }
        root = rootDirectory.path
        do {
            app = try LabHTTPServer(
                name: "app", endpoints: [Endpoint(IPAddress("0.0.0.0")!, Self.appPort), Endpoint(IPAddress("::")!, Self.appPort)],
                in: lab.pod, as: .app)
            peer = try LabHTTPServer(name: "peer", endpoints: [Self.peerService, Self.peerServiceIPv6], in: lab.peer)
            serviceRelay = try LabTCPRelay(front: Self.appService, backend: Endpoint(Self.podIP, Self.appPort), in: lab.peer)
            let capture = try lab.run(executables.sluiceInit, CaptureConfig.injectorDefaultArguments + ["--dual-stack"] + captureArguments)
            guard capture.status == 0 else { throw LabFailure(description: "sluice-init failed: \(capture)") }
            captureOutput = capture.standardOutput + capture.standardError
            var config: [String: String] = [
                "binaryPath": "\"\(executables.sluiceProxy)\"", "concurrency": "2", "terminationDrainDuration": "\"3s\"",
            ]
            config.merge(proxyConfig) { _, new in new }
            let proxyConfigJSON = "{" + config.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
            var environment = [
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "POD_NAME": "demo-app-5d8f7c9b4-x2x7q",
                "POD_NAMESPACE": "default",
                "INSTANCE_IP": Self.podIP.description,
                "SERVICE_ACCOUNT": "demo-app",
                // No istiod: the built-in CA issues the workload certificate, ECDSA as a demo should be quick.
                "CA_PROVIDER": "local",
                "ECC_SIGNATURE_ALGORITHM": "ECDSA",
                "PROXY_CONFIG": proxyConfigJSON,
            ]
            environment.merge(extra) { _, new in new }
            agent = try BackgroundProcess(
                executables.pilotAgent, ["proxy", "sidecar", "--root", root], in: lab.pod,
                environment: environment, outputPath: root + "/agent.log")
        } catch {
            lab.tearDown()
            rootDirectory.remove()
            throw error
        }
    }

    deinit { tearDown() }

    /// Polls the pod's readiness port (15021, served by the proxy and answered by the agent) until 200.
    public func waitUntilReady(timeout: Duration = .seconds(20)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let response = try? LabHTTP.request("GET", "/healthz/ready", port: 15021, in: lab.pod, timeout: .seconds(1)),
               response.status == 200 { return true }
            if agent.waitForExit(timeout: .zero) != nil { return false }
            usleep(100_000)
        }
        return false
    }

    /// An HTTP request made by the app (UID 1000, so the capture rules apply).
    public func appRequest(_ path: String = "/", to destination: Endpoint, timeout: Duration = .seconds(5)) throws -> LabHTTP.Response {
        try LabHTTP.request("GET", path, port: destination.port, host: destination.address.description, in: lab.pod,
                            as: .app, timeout: timeout)
    }

    /// An HTTP request from the peer to the pod.
    public func peerRequest(_ path: String = "/", to destination: Endpoint, timeout: Duration = .seconds(5)) throws -> LabHTTP.Response {
        try LabHTTP.request("GET", path, port: destination.port, host: destination.address.description, in: lab.peer,
                            timeout: timeout)
    }

    /// The proxy's `/stats` (127.0.0.1:15000 in the pod) as integers.
    public func proxyStats() throws -> [String: Int64] {
        let response = try LabHTTP.request("GET", "/stats", port: 15000, in: lab.pod)
        var stats: [String: Int64] = [:]
        for line in response.body.split(separator: "\n") {
            guard let colon = line.lastIndex(of: ":"), let value = Int64(line[line.index(after: colon)...].trimmingPrefix(" ")) else { continue }
            stats[String(line[..<colon])] = value
        }
        return stats
    }

    public var agentLog: String { agent.output() }

    /// Signals the agent and waits for its exit code (nil on timeout).
    public func stopAgent(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) -> Int32? {
        agent.signal(signal)
        return agent.waitForExit(timeout: timeout)
    }

    /// Stops everything and removes both namespaces and the root. Idempotent.
    public func tearDown() {
        let done = tornDown.withLock { done in
            defer { done = true }
            return done
        }
        if done { return }
        // The proxy is the agent's child and would outlive a killed agent (and keep the namespace
        // alive): find it before the agent goes.
        let children = PodLab.childProcesses(of: agent.pid)
        agent.signal(SIGKILL)
        _ = agent.waitForExit(timeout: .seconds(5))
        for child in children { kill(child, SIGKILL) }
        app.stop()
        peer.stop()
        serviceRelay.stop()
        rootDirectory.remove()
        lab.tearDown()
    }

}

public struct LabFailure: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) {
        self.description = description
    }
}

extension PodLab {
    /// Processes whose parent is `pid`, from /proc/<n>/stat.
    public static func childProcesses(of pid: pid_t) -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var children: [pid_t] = []
        for _ in 0..<1_000_000 {
            guard let entry = readdir(directory) else { break }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let candidate = pid_t(name), let stat = try? TextFile.read("/proc/\(name)/stat"),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm) state ": the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, pid_t(fields[1]) == pid { children.append(candidate) }
        }
        return children
    }
}
