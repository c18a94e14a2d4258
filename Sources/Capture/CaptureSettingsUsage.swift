extension CaptureSettings.Input {
    /// One-line help, after Istio's flag descriptions.
    var summary: String {
        switch self {
        case .envoyPort: "Port all outbound TCP traffic is redirected to"
        case .inboundCapturePort: "Port all inbound TCP traffic is redirected to"
        case .inboundTunnelPort: "HBONE tunnel port, never captured"
        case .proxyUID: "UIDs (comma list, numbers or names) whose traffic is not captured; default: UID of $ENVOY_USER, else 1337"
        case .proxyGID: "GIDs whose traffic is not captured; default: the proxy UIDs"
        case .inboundInterceptionMode: "Inbound capture mode: TPROXY, or REDIRECT (any other value)"
        case .inboundTProxyMark: "Packet mark used by TPROXY mode"
        case .inboundTProxyRouteTable: "Routing table used by TPROXY mode"
        case .inboundPorts: "Inbound ports to capture: \"*\" for all, a comma list, or empty for none"
        case .localExcludePorts: "Inbound ports not captured (only with -b \"*\")"
        case .excludeInterfaces: "Interfaces whose traffic is never captured"
        case .serviceCIDR: "Outbound CIDRs to capture: \"*\" for all, a comma list, or empty for none"
        case .serviceExcludeCIDR: "Outbound CIDRs never captured (\"*\" not allowed)"
        case .outboundPorts: "Outbound TCP ports always captured"
        case .localOutboundPortsExclude: "Outbound TCP and UDP ports never captured"
        case .kubeVirtInterfaces: "Interfaces whose incoming traffic is treated as outbound (VMs)"
        case .dryRun: "Print the ruleset instead of programming it"
        case .iptablesProbePort: "Port the validation probe dials on 127.0.0.6"
        case .probeTimeout: "Validation timeout (Go duration)"
        case .skipRuleApply: "Do not program anything"
        case .runValidation: "Check that capture works (exit 126 if not)"
        case .redirectDNS: "Capture DNS (port 53) to the agent on 15053"
        case .captureAllDNS: "With --redirect-dns, capture all port-53 traffic, not just the resolv.conf servers"
        case .dropInvalid: "Drop packets conntrack marks INVALID"
        case .dualStack: "Enable IPv6 rules if any local address is IPv6"
        case .networkNamespace: "Pod network namespace path (recorded; not entered)"
        case .cniMode: "Accepted for compatibility; ignored"
        case .reconcile: "Accepted for compatibility; ignored (every apply replaces Sluice's tables atomically)"
        case .cleanupOnly: "Remove the capture tables and exit"
        case .forceApply: "Accepted for compatibility; ignored"
        case .nativeNftables: "Accepted for compatibility; ignored (Sluice always uses nftables)"
        case .forceIptablesBinary: "Accepted for compatibility (\"\", legacy or nft); ignored"
        case .resolvConf: "resolv.conf whose nameservers DNS capture targets"
        case .help: "Show this help"
        case .outboundOwnerGroups: "Groups (names or GIDs) whose outbound traffic is captured; \"*\" for all"
        case .outboundOwnerGroupsExclude: "With ISTIO_OUTBOUND_OWNER_GROUPS=\"*\", groups whose outbound traffic is not captured"
        case .outboundIPv4LoopbackCIDR: "IPv4 loopback CIDR treated as localhost (mask 8-32)"
        case .envoyUser: "User whose UID is the default --proxy-uid"
        case .dryRunFilePath: "With --dry-run, write the output to this file"
        }
    }

    /// The default `--help` shows: read from `CaptureSettings()`, so it cannot drift from the real one.
    /// Empty defaults (and booleans, all false) are not shown.
    var defaultText: String? {
        let defaults = CaptureSettings()
        switch kind {
        case .string:
            let value = defaults[keyPath: CaptureSettings.stringKeyPath(self)]
            return value.isEmpty ? nil : value
        case .uint16:
            return String(defaults.iptablesProbePort)
        case .duration:
            return "\(defaults.probeTimeout.components.seconds)s"
        case .bool:
            return nil
        }
    }
}

extension CaptureSettings {
    /// The `--help` text.
    public static var usage: String {
        var lines = [
            "sluice-init programs Istio-compatible sidecar traffic capture (nftables, one atomic transaction).",
            "A drop-in for istio-iptables: same flags, same environment variables, same defaults.",
            "",
            "Usage:",
            "  sluice-init [flags]",
            "",
            "Flags (a later source wins: default, then environment, then command line):",
        ]
        let flags = Input.allCases.filter { !$0.isEnvironmentOnly }
        let heads = flags.map { input -> String in
            let short = input.shorthand.map { "-\($0), " } ?? "    "
            let value = switch input.kind {
            case .bool: ""
            case .uint16: " port"
            case .duration: " duration"
            case .string: " string"
            }
            return "  \(short)--\(input.rawValue)\(value)"
        }
        let width = (heads.map(\.count).max() ?? 0) + 3
        for (input, head) in zip(flags, heads) {
            var text = input.summary
            if let defaultText = input.defaultText { text += " (default \(defaultText))" }
            if !input.environmentNames.isEmpty {
                text += " [env " + input.environmentNames.joined(separator: ", ") + "]"
            }
            lines.append(head.padding(to: width) + text)
        }
        lines += [
            "      --log_output_level, --log_as_json, --log_caller, --log_stacktrace_level, --log_target,",
            "      --log_rotate, --log_rotate_max_age, --log_rotate_max_size, --log_rotate_max_backups, --vklog",
            String(repeating: " ", count: width) + "pilot-agent logging flags, accepted for compatibility",
            "",
            "Environment only:",
        ]
        let environmentOnly = Input.allCases.filter(\.isEnvironmentOnly)
        let envWidth = (environmentOnly.map(\.rawValue.count).max() ?? 0) + 5
        for input in environmentOnly {
            var text = input.summary
            if let defaultText = input.defaultText { text += " (default \(defaultText))" }
            lines.append(("  " + input.rawValue).padding(to: envWidth) + text)
        }
        lines += [
            "",
            "When both are set, ISTIO_META_DNS_CAPTURE beats REDIRECT_DNS, INVALID_DROP beats DROP_INVALID and",
            "ISTIO_DUAL_STACK beats DUAL_STACK. Environment values that do not parse are ignored.",
            "Exit codes: 0 ok, 1 kernel error, 2 bad flags or environment, 126 validation failed.",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
