import AgentConfig
import AgentHTTP
import ConfigFormats
import DNSResolution
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import StatusServer
import Supervisor
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The running agent: the status server, the DNS proxy, SDS and the supervised data plane, as services
/// of one `ServiceGroup`. SIGTERM/SIGINT shut the group down in reverse order, so the data plane is drained
/// and stopped first while the status server keeps answering (readiness 503 "server is terminated",
/// metrics still scrapeable), and the status server closes last.
enum AgentRuntime {
    static func run(_ prepared: PreparedAgent) async -> Int32 {
        let logger = Logger(label: "default")
        switch prepared.privileges {
        case .switchedFromRoot(let identity): logger.info("switched from root to the proxy user (\(identity)); no capabilities kept")
        case .keptRoot: logger.warning("running as root because --allow-root was given")
        case .unprivileged: break
        }

        let exitCode = await PilotAgent.withEventLoop { group in await run(prepared, group: group, logger: logger) }
        logger.info("agent exiting with code \(exitCode)")
        return exitCode
    }

    private static func run(_ prepared: PreparedAgent, group: MultiThreadedEventLoopGroup, logger: Logger) async -> Int32 {
        let configuration = prepared.configuration

        let localhost = configuration.identity.localhost
        let adminPort = configuration.proxyConfig.proxyAdminPort
        let admin = EnvoyAdminClient(host: localhost, port: adminPort, group: group)
        let metrics = AgentMetrics(buildTag: AgentConfiguration.istioVersion)
        let shutdown = ShutdownFlag()
        let readiness = DataPlaneReadiness(admin: admin, expectedListeners: prepared.expectedListeners, shutdown: shutdown,
                                           startedAt: prepared.startedAt,
                                           onFirstReady: { metrics.recordStartupDuration($0) })
        let supervisor = DataPlaneSupervisor(forwardsSignals: true, logger: Logger(label: "supervisor"))
        let isSidecar = configuration.identity.proxyType == .sidecar
        let drainTarget = AdminDrainTarget(client: admin, excludedPorts: [
            adminPort, configuration.options.envoyStatusPort, configuration.options.envoyPrometheusPort,
        ])
        let control = ShutdownControl()

        @Sendable func drainPlan(skipDrain: Bool) -> DrainPlan {
            DrainPlan(isSidecar: isSidecar,
                      terminationDrainDuration: configuration.proxyConfig.terminationDrainDuration,
                      exitOnZeroActiveConnections: configuration.options.exitOnZeroActiveConnections,
                      minimumDrainDuration: configuration.options.minimumDrainDuration,
                      skipDrain: skipDrain)
        }
        let drainLogger = Logger(label: "drain")

        // DNS first, as Istio starts it: the app's first lookups (and the data plane's) are answered.
        var dns: DNSService?
        if let plan = prepared.dns {
            do {
                dns = try await DNSService.start(plan, metrics: metrics, group: group, logger: logger)
            } catch {
                logger.error("\(error)")
                printError("pilot-agent: \(error)")
                return 1
            }
        }

        var nameTableJSON: (@Sendable () -> String?)?
        if let store = dns?.watcher.store {
            nameTableJSON = { store.nameTable?.jsonValue.renderedJSON() }
        }

        let probes = applicationProbes(configuration)
        let statusConfiguration = StatusServerConfiguration(
            readinessChecks: (dns.map { [$0.readiness] } ?? []) + [readiness],
            metrics: metrics,
            metricsMerge: metricsMerge(configuration, localhost: localhost),
            metricsLocalhostOnly: configuration.options.metricsLocalhostAccessOnly,
            prober: prober(probes, configuration, group: group),
            shutdown: shutdown,
            quit: {
                // POST /quitquitquit: no drain, the data plane is stopped at once, the agent exits 0.
                control.skipDrain()
                await control.triggerShutdown()
            },
            drain: {
                // POST /drain (native sidecars' preStop): drain now, and let the later SIGTERM stop at once.
                control.skipDrain()
                let sequence = DrainSequence(plan: drainPlan(skipDrain: false), admin: drainTarget, clock: ContinuousClock(), logger: drainLogger)
                do {
                    try await sequence.requestDrainWithoutExit()
                } catch {
                    drainLogger.warning("drain request to the data plane failed: \(error)")
                }
            },
            nameTableJSON: nameTableJSON)

        let statusServer: StatusServer?
        if configuration.proxyConfig.statusPort > 0 {
            do {
                statusServer = try await StatusServer.start(
                    host: configuration.identity.ipMode == .ipv4 ? "0.0.0.0" : "::",
                    port: configuration.proxyConfig.statusPort, configuration: statusConfiguration,
                    group: group, logger: Logger(label: "status"))
            } catch {
                logger.error("status server: \(error)")
                printError("pilot-agent: status server: \(error)")
                return 1
            }
        } else {
            statusServer = nil
        }

        for (path, reason) in ApplicationProber.unsupportedProbes(probes) {
            logger.warning("application probe \(path) will fail: \(reason)")
        }
        do {
            try SignalForwarder.install()
        } catch {
            logger.warning("SIGHUP/SIGUSR1/SIGUSR2 will not reach the data plane: \(error)")
        }

        let secrets: SecretsService
        do {
            secrets = try SecretsService.start(prepared.secrets, group: group, logger: logger)
        } catch {
            logger.error("\(error)")
            printError("pilot-agent: \(error)")
            return 1
        }

        let dataPlane = DataPlaneService(
            supervisor: supervisor, launch: prepared.launch,
            restart: configuration.options.restartProxy ? RestartPolicy() : nil,
            onShutdown: {
                // Readiness fails at once; the drain runs while the status server still answers.
                shutdown.set()
                let plan = drainPlan(skipDrain: control.isDrainSkipped)
                Task {
                    let report = await supervisor.drain(DrainSequence(plan: plan, admin: drainTarget, clock: ContinuousClock(), logger: drainLogger))
                    drainLogger.info("data plane stopped: \(report.ending)")
                }
            },
            logger: logger)
        let status = StatusService(server: statusServer, shutdown: shutdown)

        let serviceGroup = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: status, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "status server"),
            ] + (dns.map { [.init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "DNS proxy")] } ?? []) + [
                .init(service: secrets, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "SDS"),
                .init(service: dataPlane, successTerminationBehavior: .gracefullyShutdownGroup,
                      failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: "data plane"),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "lifecycle")))
        control.attach(serviceGroup)

        do {
            try await serviceGroup.run()
        } catch {
            logger.error("agent stopped: \(error)")
        }
        return dataPlane.exitCode
    }

    private static func metricsMerge(_ configuration: AgentConfiguration, localhost: String) -> MetricsMergeConfiguration {
        let targets = (configuration.prometheusScrape?.scrape ?? false)
            ? configuration.prometheusScrape!.targets.map { MetricsMergeTarget(port: $0.port, path: $0.path) }
            : []
        return MetricsMergeConfiguration(
            dataPlanePrometheusPort: configuration.options.mergeEnvoyStats ? configuration.options.envoyPrometheusPort : nil,
            dataPlaneHost: localhost, applicationTargets: targets)
    }

    private static func applicationProbes(_ configuration: AgentConfiguration) -> [String: ApplicationProbe] {
        configuration.appProbers.mapValues { probe in
            let seconds = Int(probe.timeout.components.seconds)
            let timeoutSeconds = max(1, seconds)
            switch probe.action {
            case .httpGet(let get):
                return ApplicationProbe(action: .httpGet(.init(
                    path: get.path, port: get.port, scheme: get.scheme.rawValue,
                    headers: get.headers.map { HTTPFields.Field(name: $0.name, value: $0.value) })),
                    timeoutSeconds: timeoutSeconds)
            case .tcpSocket(let socket):
                return ApplicationProbe(action: .tcpSocket(port: socket.port), timeoutSeconds: timeoutSeconds)
            case .grpc(let grpc):
                return ApplicationProbe(action: .grpc(port: grpc.port, service: grpc.service), timeoutSeconds: timeoutSeconds)
            }
        }
    }

    private static func prober(_ probes: [String: ApplicationProbe], _ configuration: AgentConfiguration,
                               group: any EventLoopGroup) -> ApplicationProber? {
        guard !probes.isEmpty else { return nil }
        let destination: ProbeDestination = configuration.options.rewriteProbeLegacyLocalhostDestination
            ? .localhost
            : .podIP(configuration.identity.ipAddresses.first ?? "127.0.0.1")
        return ApplicationProber(probes: probes, destination: destination, statusPort: configuration.proxyConfig.statusPort,
                                 group: group, logger: Logger(label: "app-probe"))
    }
}

/// The drain logic's view of the data plane's admin API (AGENT.md §6): the readiness, Prometheus and
/// admin listeners do not count as open application connections.
struct AdminDrainTarget: DataPlaneAdmin {
    var client: EnvoyAdminClient
    var excludedPorts: Set<Int>

    func drainListeners(inboundOnly: Bool, graceful: Bool, skipExit: Bool) async throws {
        try await client.drainListeners(inboundOnly: inboundOnly, graceful: graceful, skipExit: skipExit)
    }

    func activeDownstreamConnections() async throws -> Int? {
        try await client.activeDownstreamConnections(excludingPorts: excludedPorts)
    }
}

/// Who asked for the shutdown and how: `/quitquitquit` and `/drain` skip the drain on the way out.
final class ShutdownControl: Sendable {
    private let state = Mutex<(skip: Bool, group: ServiceGroup?)>((false, nil))

    func attach(_ group: ServiceGroup) { state.withLock { $0.group = group } }
    func skipDrain() { state.withLock { $0.skip = true } }
    var isDrainSkipped: Bool { state.withLock { $0.skip } }

    func triggerShutdown() async {
        guard let group = state.withLock({ $0.group }) else { return }
        await group.triggerGracefulShutdown()
    }
}

/// Serves until the group shuts down, then closes the listener. Last in line: it answers during the drain.
struct StatusService: Service {
    var server: StatusServer?
    var shutdown: ShutdownFlag

    func run() async throws {
        try? await gracefulShutdown()
        shutdown.set()
        await server?.close()
    }
}

/// Runs the data plane under the supervisor. When it exits on its own the agent exits with its code;
/// after a drain or `/quitquitquit`, with 0 (Istio's behaviour for an ordered shutdown).
final class DataPlaneService: Service, Sendable {
    private let supervisor: DataPlaneSupervisor
    private let launch: ProcessLaunch
    private let restart: RestartPolicy?
    private let onShutdown: @Sendable () -> Void
    private let logger: Logger
    private let outcome = Mutex<Int32>(0)

    init(supervisor: DataPlaneSupervisor, launch: ProcessLaunch, restart: RestartPolicy?,
         onShutdown: @escaping @Sendable () -> Void, logger: Logger) {
        self.supervisor = supervisor
        self.launch = launch
        self.restart = restart
        self.onShutdown = onShutdown
        self.logger = logger
    }

    var exitCode: Int32 { outcome.withLock { $0 } }

    func run() async throws {
        let supervisor = self.supervisor
        let launch = self.launch
        let restart = self.restart
        do {
            let status = try await withGracefulShutdownHandler {
                try await supervisor.run(launch: launch, restart: restart)
            } onGracefulShutdown: { [onShutdown] in
                onShutdown()
            }
            let ordered = await supervisor.stopRequested
            outcome.withLock { $0 = ordered ? 0 : status.shellCode }
            if !ordered { logger.warning("data plane \(status); the agent exits with its code \(status.shellCode)") }
        } catch let error as ProcessError {
            logger.error("cannot start the data plane: \(error)")
            outcome.withLock { $0 = error.isConfigurationError ? 2 : 1 }
        } catch {
            // Cancelled: the group is going down and the data plane was stopped and reaped.
            outcome.withLock { $0 = 0 }
        }
    }
}

func printError(_ message: String) {
    let line = message + "\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}
