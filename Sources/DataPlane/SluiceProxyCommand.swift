import CSockets
import DataPlaneConfig
import Logging
import Synchronization
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// `sluice-proxy`: Envoy's command line in, exit status out. Configuration errors (flags, bootstrap)
/// exit 2 before anything binds; a proxy that cannot start (a port in use, a missing capability)
/// exits 1; a clean stop (`/quitquitquit`, SIGTERM, SIGINT) exits 0.
public enum SluiceProxyCommand {
    /// Signals the proxy handles on its own thread; every other thread has them blocked.
    private static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1]

    /// Call before any thread exists, so every thread inherits the blocked set and only the signal
    /// thread ever sees them.
    public static func blockHandledSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handledSignals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    public static func run(arguments: [String]) async -> Int32 {
        let commandLine: ProxyCommandLine
        do {
            commandLine = try ProxyCommandLine.parse(arguments)
        } catch {
            printError("sluice-proxy: \(error.message) (sluice-proxy --help lists the flags)")
            return 2
        }
        switch commandLine.mode {
        case .help:
            print(ProxyCommandLine.usage)
            return 0
        case .version:
            print("sluice-proxy version: \(AdminAPI.defaultVersion)")
            return 0
        case .serve, .validate:
            break
        }
        let bootstrap: ProxyBootstrap
        let plan: ProxyPlan
        let logLevels: ProxyLogLevels
        do {
            bootstrap = try ProxyBootstrap.load(commandLine: commandLine) { path throws in try TextFile.read(path) }
            plan = try ProxyPlan.make(bootstrap: bootstrap, commandLine: commandLine, hostCores: hostCores())
            logLevels = try ProxyLogLevels(commandLine: commandLine)
            try ProxyLogging.bootstrap(commandLine: commandLine, bootstrap: bootstrap, levels: logLevels)
        } catch {
            printError("sluice-proxy: configuration error: \(error.message)")
            return 2
        }
        let logger = Logger(label: "main")
        for warning in commandLine.warnings + bootstrap.warnings { logger.warning("\(warning)") }
        if commandLine.mode == .validate {
            print("configuration '\(commandLine.configPath ?? "--config-yaml")' OK")
            return 0
        }
        raiseOpenFileLimit(logger: logger)
        let server: ProxyServer
        do {
            server = try await ProxyServer.start(
                bootstrap: bootstrap, commandLine: commandLine, plan: plan, logLevels: logLevels)
        } catch {
            logger.critical("cannot start: \(error.message)")
            return 1
        }
        startSignalThread(server: server, logger: logger)
        await server.run()
        logger.info("exiting")
        return 0
    }

    // MARK: - Process set-up

    /// Each proxied connection holds two sockets (and, while bytes are in flight, two pipe ends): the
    /// usual soft limit of 1024 descriptors would cap a sidecar at a few hundred connections. The
    /// hard limit is what the container or unit allows.
    private static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("cannot raise the open-file limit to \(limit.rlim_max): \(String(cString: strerror(errno)))")
        }
    }

    /// The default worker count: the cores this process may run on. Envoy counts every core unless
    /// given --cpuset-threads; following the affinity mask always is what a pinned container wants.
    private static func hostCores() -> Int {
        let available = Int(sluice_available_cpus())
        return available > 0 ? available : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    private final class SignalContext {
        let server: ProxyServer
        let logger: Logger
        init(server: ProxyServer, logger: Logger) {
            self.server = server
            self.logger = logger
        }
    }

    /// SIGTERM and SIGINT stop the proxy as `/quitquitquit` does; SIGHUP is ignored (Envoy's hot
    /// restart signal; sluice-proxy never hot-restarts); SIGUSR1 (reopen access logs) has nothing to
    /// reopen, since sluice-proxy writes no access logs.
    private static func startSignalThread(server: ProxyServer, logger: Logger) {
        let context = Unmanaged.passRetained(SignalContext(server: server, logger: logger)).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { context in
            let signals = Unmanaged<SignalContext>.fromOpaque(context!).takeRetainedValue()
            var set = sigset_t()
            sigemptyset(&set)
            for signal in SluiceProxyCommand.handledSignals { sigaddset(&set, signal) }
            while true {
                var received: Int32 = 0
                guard sigwait(&set, &received) == 0 else { continue }
                switch received {
                case SIGTERM, SIGINT:
                    signals.logger.info("caught \(received == SIGTERM ? "SIGTERM" : "SIGINT")")
                    signals.server.requestStop()
                    return nil
                default:
                    signals.logger.debug("ignoring signal \(received)")
                }
            }
        }, context)
        pthread_detach(thread)
    }

    // MARK: - Output

    private static func printError(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        // fd 2 directly: Swift 6 treats C's `stderr` global as shared mutable state.
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
