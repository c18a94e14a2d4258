extension AgentCommandLine {
    /// Help text for `pilot-agent [topic] --help` / `pilot-agent help [topic]`; an unknown topic gets the
    /// general text.
    public static func usage(for topic: String? = nil) -> String {
        switch topic.flatMap(Subcommand.init(rawValue:)) {
        case .proxy:
            return """
                Usage: pilot-agent proxy [sidecar|router] [flags]

                Writes the data plane's bootstrap, starts and supervises the data plane, and serves status,
                readiness and merged metrics on the status port (15020).

                Flags:
                \(flagLines(FlagDefinition.proxyList))

                \(commonFlagsSection)

                \(environmentSection)
                """
        case .wait:
            return """
                Usage: pilot-agent wait [flags]

                Polls the readiness URL until it answers 200 or the timeout passes (exit 255 then). Used as the
                postStart hook of holdApplicationUntilProxyStarts.

                Flags:
                \(flagLines(FlagDefinition.waitList))

                \(commonFlagsSection)
                """
        case .request:
            return """
                Usage: pilot-agent request METHOD PATH [BODY] [flags]

                Sends one HTTP request to a local Istio port, e.g. `pilot-agent request --debug-port=15020 POST drain`.

                Flags:
                \(flagLines(FlagDefinition.requestList))

                \(commonFlagsSection)
                """
        case .version:
            return """
                Usage: pilot-agent version [flags]

                Flags:
                \(flagLines(FlagDefinition.versionList))
                """
        case .istioIptables:
            return """
                Usage: pilot-agent istio-iptables [sluice-init flags]

                Sets up traffic capture exactly as sluice-init does; every argument after istio-iptables is
                sluice-init's. See sluice-init --help.
                """
        case .help, nil:
            return """
                Usage: pilot-agent COMMAND [flags]

                Sluice's drop-in for Istio's pilot-agent: the sidecar entrypoint that bootstraps and supervises
                the data plane.

                Commands:
                  proxy [sidecar|router]    run the data plane (default type sidecar)
                  wait                      wait until the proxy is ready
                  request METHOD PATH       send a request to a local Istio port
                  version                   print the version
                  istio-iptables            set up traffic capture (sluice-init)
                  help [COMMAND]            show help for a command

                \(commonFlagsSection)

                Run `pilot-agent COMMAND --help` for a command's flags.
                """
        }
    }

    static func flagLines(_ flags: [FlagDefinition]) -> String {
        let rendered = flags.map { flag -> (String, String) in
            var left = "  "
            if let letter = flag.shorthand { left += "-\(letter), " } else { left += "    " }
            left += "--\(flag.name)"
            if !flag.valueName.isEmpty { left += " \(flag.valueName)" }
            return (left, flag.summary)
        }
        let width = (rendered.map(\.0.count).max() ?? 0) + 2
        return rendered.map { left, summary in
            left + String(repeating: " ", count: width - left.count) + summary
        }.joined(separator: "\n")
    }

    static var commonFlagsSection: String {
        "Flags for every command:\n" + flagLines(FlagDefinition.rootList)
    }

    static let environmentSection = """
        Environment (Istio's names and defaults):
          POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT, HOST_IP   identity; node id POD_NAME.POD_NAMESPACE
          TRUST_DOMAIN (cluster.local), ISTIO_META_CLUSTER_ID               trust domain, cluster id
          PROXY_CONFIG                         ProxyConfig as JSON or YAML (merged over the mesh config's defaultConfig;
                                               the pod annotation proxy.istio.io/config is merged over it)
          ISTIO_META_<KEY>=value               node metadata KEY: "value"
          ISTIO_METAJSON_<NAME>={...}          JSON object merged into node metadata (ISTIO_METAJSON_LABELS also sets LABELS)
          ISTIO_META_INTERCEPTION_MODE         REDIRECT (default), TPROXY or NONE
          ISTIO_META_DNS_CAPTURE (false)       run the DNS proxy for a sidecar; ISTIO_META_ENABLE_DNS_SERVER for any type
          DNS_PROXY_ADDR (localhost:15053)     DNS proxy address
          DNS_FORWARD_PARALLEL (false), DNS_FORWARD_TIMEOUT (5s)   ask every nameserver at once / each one's time limit
          SLUICE_NAME_TABLE (./etc/istio/proxy/name-table.json)   the DNS name table (Istio NameTable JSON), reloaded on change
          SLUICE_RESOLV_CONF (/etc/resolv.conf)   the nameservers and search list the DNS proxy uses
          ISTIO_CPU_LIMIT                      worker threads when ProxyConfig sets no concurrency
          ISTIO_BOOTSTRAP, ISTIO_BOOTSTRAP_OVERRIDE   bootstrap template / file merged over the bootstrap
          ENVOY_STATUS_PORT (15021), ENVOY_PROMETHEUS_PORT (15090)
          EXIT_ON_ZERO_ACTIVE_CONNECTIONS (false), MINIMUM_DRAIN_DURATION (5s)
          ISTIO_DUAL_STACK, METRICS_LOCALHOST_ACCESS_ONLY, PILOT_AGENT_MERGE_ENVOY_STATS (true)
          ISTIO_KUBE_APP_PROBERS               rewritten application probes (JSON)
          ISTIO_PROMETHEUS_ANNOTATIONS         application metrics to merge (JSON {scrape,path,port})
          ENVOY_SKIP_DEPRECATED_LOGS (true), ISTIO_ENVOY_ENABLE_CORE_DUMP (false)
          WORKLOAD_IDENTITY_SOCKET_FILE (socket)
          SLUICE_ROOT (/)                      like --root
        Booleans take Go's syntax: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
        Entries of ProxyConfig.proxyMetadata act as environment variables the real environment overrides.
        """
}
