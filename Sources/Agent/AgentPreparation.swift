import AgentConfig
import Bootstrap
import ConfigFormats
import Glibc
import Logging
import Supervisor
import TextFiles

/// A configuration error or an environment the agent cannot run in, with the exit code it maps to:
/// 2 when the fix is in the configuration (flags, env, ProxyConfig, image layout), 1 otherwise.
public struct AgentStartupError: Error, CustomStringConvertible {
    public var description: String
    public var exitCode: Int32

    static func configuration(_ message: String) -> AgentStartupError { AgentStartupError(description: message, exitCode: 2) }
    static func environment(_ message: String) -> AgentStartupError { AgentStartupError(description: message, exitCode: 1) }
}

/// What `pilot-agent proxy` has decided and written before anything runs: the configuration, the
/// bootstrap on disk and the data plane's command line.
public struct PreparedAgent: Sendable {
    public var configuration: AgentConfiguration
    public var launch: ProcessLaunch
    /// Static listeners in the bootstrap: readiness waits until the data plane has them all.
    public var expectedListeners: Int
    public var privileges: ProcessPrivileges.Outcome
    public var startedAt: ContinuousClock.Instant
    /// The certificate source and the SDS socket.
    var secrets: SecretsPlan
    /// The DNS proxy, when DNS capture or the DNS server is on.
    var dns: DNSPlan?
}

/// The synchronous start of `pilot-agent proxy`, run while the process still has one thread
/// (capabilities are per thread, so they must go before any thread exists).
enum AgentPreparation {
    static func prepare(invocation: AgentInvocation, environment: [String: String],
                        startedAt: ContinuousClock.Instant) throws(AgentStartupError) -> PreparedAgent {
        var invocation = invocation
        var environment = environment
        // The root may be given relative to where the agent was started; resolution wants it absolute.
        if let root = invocation.common.root { invocation.common.root = absolute(root) }
        if let root = environment["SLUICE_ROOT"], !root.isEmpty { environment["SLUICE_ROOT"] = absolute(root) }

        let configuration: AgentConfiguration
        do {
            configuration = try AgentConfiguration.resolve(invocation: invocation, environment: environment,
                                                           files: LiveFiles(), hostAddresses: HostAddresses.collect())
        } catch {
            throw .configuration(error.description)
        }
        bootstrapLogging(configuration.options)
        let logger = Logger(label: "default")
        for warning in configuration.warnings { logger.warning("\(warning)") }

        let executable = try dataPlaneExecutable(configuration)
        let bootstrap = try BootstrapPlan.make(configuration)
        try checkPortsAreFree(configuration, listeners: bootstrap.listenerAddresses)

        // Directories first, while still root (VM mode): the proxy user must own what it writes later.
        // Only a root start switches users, so only then is the proxy user looked up.
        let switchesUser = geteuid() == 0 && !configuration.options.allowRoot
        let proxyIdentity = switchesUser ? ProxyIdentity.lookUp() : nil
        let configDirectory = configuration.paths.filesystemPath(configuration.proxyConfig.configPath)
        try prepareDirectory(configDirectory, owner: proxyIdentity)
        // The SDS socket's directory: the proxy user binds there once it is no longer root.
        let secrets = try SecretsPlan.make(configuration, logger: logger)
        for directory in [parent(of: secrets.socketPath), parent(of: secrets.filesSocketPath)] + [secrets.store.outputDirectory].compactMap({ $0 }) {
            try prepareDirectory(directory, owner: proxyIdentity, purpose: "the SDS socket or OUTPUT_CERTS directory")
        }

        let dns = try DNSPlan.make(configuration, logger: logger)

        let privileges: ProcessPrivileges.Outcome
        do {
            privileges = try ProcessPrivileges.drop(switchingTo: proxyIdentity)
        } catch {
            throw .configuration(error.description)
        }

        var bootstrapPathForDataPlane = bootstrap.pathForDataPlane
        if let text = bootstrap.textToWrite {
            do {
                // Through a rename: the data plane may be restarting and must never read half a bootstrap.
                try TextFile.writeAtomically(text, to: bootstrap.filesystemPath)
            } catch {
                throw .environment("cannot write \(error); the config directory (ProxyConfig configPath) must be writable by uid \(geteuid())")
            }
        } else {
            bootstrapPathForDataPlane = bootstrap.filesystemPath
        }

        var arguments = EnvoyArguments(configPath: bootstrapPathForDataPlane)
        arguments.drainDuration = configuration.proxyConfig.drainDuration
        arguments.localAddressIPVersion = configuration.identity.ipMode == .ipv6 ? .v6 : .v4
        if let interval = configuration.proxyConfig.fileFlushInterval { arguments.fileFlushInterval = interval }
        if configuration.proxyConfig.fileFlushMinSizeKb > 0 {
            arguments.fileFlushMinimumSizeKilobytes = configuration.proxyConfig.fileFlushMinSizeKb
        }
        arguments.proxyLogLevel = configuration.options.proxyLogLevel ?? ""
        arguments.proxyComponentLogLevel = configuration.options.proxyComponentLogLevel ?? ""
        arguments.skipDeprecatedLogs = configuration.options.skipDeprecatedLogs
        arguments.enableCoreDump = configuration.options.enableCoreDump
        arguments.configOverride = try bootstrapOverride(configuration)
        arguments.concurrency = configuration.options.concurrency ?? 0

        let launch = ProcessLaunch(executablePath: executable, arguments: arguments.arguments,
                                   environment: configuration.environment,
                                   // Relative paths in the bootstrap (`./var/run/...`) are relative to the root, as
                                   // Istio's are relative to its image's working directory `/`.
                                   workingDirectory: configuration.paths.root)
        return PreparedAgent(configuration: configuration, launch: launch, expectedListeners: bootstrap.staticListenerCount,
                             privileges: privileges, startedAt: startedAt, secrets: secrets, dns: dns)
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    private static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let current = getcwd(nil, 0) else { return path }
        defer { free(current) }
        let directory = String(cString: current)
        return (directory == "/" ? "" : directory) + "/" + path
    }

    static func bootstrapLogging(_ options: AgentOptions) {
        func swiftLevel(_ level: LogLevel) -> Logger.Level {
            switch level {
            case .none: .critical
            case .fatal: .critical
            case .error: .error
            case .warn: .warning
            case .info: .info
            case .debug: .debug
            }
        }
        let scopes = Dictionary(uniqueKeysWithValues: options.logLevels.scopeLevels.map { ($0.key, swiftLevel($0.value)) })
        IstioLogHandler.bootstrap(defaultLevel: swiftLevel(options.logLevels.level(forScope: "default")),
                                  scopeLevels: scopes, unlistedLevel: swiftLevel(options.logLevels.unlistedScopeLevel),
                                  json: options.logAsJSON)
    }

    /// ProxyConfig.binaryPath (Envoy, `/usr/local/bin/envoy` by default) when it is there, else
    /// Sluice's own data plane next to the agent.
    static func dataPlaneExecutable(_ configuration: AgentConfiguration) throws(AgentStartupError) -> String {
        let configured = configuration.paths.filesystemPath(configuration.proxyConfig.binaryPath)
        if access(configured, X_OK) == 0 { return configured }
        let builtIn = executableDirectory() + "/sluice-proxy"
        if access(builtIn, X_OK) == 0 { return builtIn }
        throw .configuration("no data plane to run: \(configured) (ProxyConfig binaryPath) and \(builtIn) are both missing or not executable; "
            + "install Envoy there, set binaryPath in PROXY_CONFIG, or install sluice-proxy next to pilot-agent")
    }

    private static func executableDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "." }
        let path = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    /// `ISTIO_BOOTSTRAP_OVERRIDE`: a JSON or YAML file Envoy merges over the bootstrap (`--config-yaml`),
    /// with `$(HOST_IP)` replaced as Istio does for tracer addresses.
    private static func bootstrapOverride(_ configuration: AgentConfiguration) throws(AgentStartupError) -> JSONValue? {
        guard let path = configuration.options.bootstrapOverridePath else { return nil }
        let fullPath = configuration.paths.filesystemPath(path)
        let text: String?
        do {
            text = try LiveFiles().contents(ofFile: fullPath)
        } catch {
            throw .configuration("ISTIO_BOOTSTRAP_OVERRIDE: \(error)")
        }
        guard let text else { throw .configuration("ISTIO_BOOTSTRAP_OVERRIDE: \(fullPath) does not exist") }
        let substituted = text.replacing("$(HOST_IP)", with: configuration.options.hostIP)
        do {
            let value = try JSONValue.parse(yamlOrJSON: substituted)
            guard value.objectValue != nil else {
                throw FormatError("the override must be an object of bootstrap fields, not \(value.kindDescription)")
            }
            return value
        } catch {
            throw .configuration("ISTIO_BOOTSTRAP_OVERRIDE \(fullPath): \(error)")
        }
    }

    private static func prepareDirectory(_ path: String, owner: ProxyIdentity?,
                                         purpose: String = "the config directory (ProxyConfig configPath)") throws(AgentStartupError) {
        do {
            // 0750: the data plane reads what is here; nobody else needs to (Istio uses 0700 for its own writes).
            try TextFile.createDirectory(path, mode: 0o750)
        } catch {
            throw .environment("cannot create directory \(error); \(purpose) must be creatable")
        }
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            throw .environment("cannot hand \(path) to the proxy user (\(owner)): \(String(cString: strerror(errno)))")
        }
    }

    /// Fails before anything starts when a port the agent or the data plane needs is taken, naming it,
    /// instead of leaving a data plane that dies on bind behind a half-started agent.
    private static func checkPortsAreFree(_ configuration: AgentConfiguration,
                                          listeners: [BootstrapPlan.ListenerAddress]) throws(AgentStartupError) {
        var wanted = listeners
        let statusPort = configuration.proxyConfig.statusPort
        if statusPort > 0 {
            wanted.append(.init(name: "the agent's status server", address: configuration.identity.ipMode == .ipv4 ? "0.0.0.0" : "::", port: statusPort))
        }
        for listener in wanted {
            if let problem = PortProbe.bindProblem(address: listener.address, port: listener.port) {
                throw .environment("port \(listener.port) on \(listener.address) (\(listener.name)) \(problem); "
                    + "stop what holds it, or move it (ProxyConfig proxyAdminPort/statusPort, ENVOY_STATUS_PORT, ENVOY_PROMETHEUS_PORT)")
            }
        }
    }
}
