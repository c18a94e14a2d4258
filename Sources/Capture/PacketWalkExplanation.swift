/// The words `sluice-init explain` prints for a walk: one summary line, the packet, the rules it
/// passed, and the notes. Written for a node admin comparing it with `nft list ruleset` and `inspect`.
extension PacketWalk {
    /// One line: "redirected to 127.0.0.1:15001 by istio-redirect rule 1 (original destination
    /// 203.0.113.1:80 kept for SO_ORIGINAL_DST)", "not captured: leaves via eth0 to 203.0.113.1:80", ...
    public var summary: String {
        switch fate {
        case .redirected(let target, let location):
            var line = "redirected to \(target) by \(location)"
            if let original = originalDestination, original != target {
                line += " (original destination \(original) kept for SO_ORIGINAL_DST)"
            }
            return line
        case .transparentProxy(let port, let location):
            return "handed to the transparent listener on port \(port) by \(location) "
                + "(TPROXY: the packet keeps its destination \(probe.destination))"
        case .delivered(let endpoint):
            return "not captured: delivered to \(endpoint) in this namespace"
        case .leaves(let endpoint, let interface):
            return "not captured: leaves via \(interface) to \(endpoint)"
        case .forwarded(let endpoint):
            return "not captured: \(endpoint.address) is not local, so the packet is routed onward (forwarding)"
        case .dropped(let location):
            return "dropped by \(location)"
        case .undetermined(let location, let reason):
            return "undetermined at \(location.qualifiedDescription): \(reason)"
        }
    }

    /// The destination before a REDIRECT rewrote it: the probe's own destination.
    private var originalDestination: Endpoint? {
        if case .redirected = fate { return probe.destination }
        return nil
    }

    /// The explanation `sluice-init explain` prints: the summary, the packet, then the rules that matched,
    /// one line each (`output  istio-proxy-nat/istio-output rule 9: jump istio-redirect  # <comment>`);
    /// `verbose` adds the rules that did not match and the first condition that failed. Notes last.
    public func explanation(verbose: Bool) -> String {
        var lines = [summary, "packet: \(probe.summary)"]
        let shown = steps.filter { verbose || $0.matched }
        let labels = shown.map(\.hookLabel)
        let width = labels.map(\.count).max() ?? 0
        for (step, label) in zip(shown, labels) {
            let outcome = step.mismatch.map { "no match: \($0)" } ?? step.effect ?? ""
            var line = "\(label.padding(to: width))  \(step.location.qualifiedDescription): \(outcome)"
            if !step.rule.comment.isEmpty { line += "   # \(step.rule.comment)" }
            lines.append(line)
        }
        if shown.isEmpty { lines.append(verbose ? "(no rule saw the packet)" : "(no rule matched the packet)") }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension PacketProbe {
    /// "tcp 192.0.2.2:40312 → 203.0.113.1:80 from uid 1000 gid 1000, routed via eth0, ct state new".
    public var summary: String {
        var words = "\(transport.rawValue) \(source) → \(destination)"
        switch origin {
        case .local(let uid, let gid, let interface):
            words += " from uid \(uid) gid \(gid), routed via \(interface)"
        case .arriving(let interface):
            words += " arriving on \(interface)"
        }
        words += ", ct state \(NftTextRenderer.stateNames(connectionState).joined(separator: ","))"
        if mark != 0 { words += ", mark \(mark)" }
        if connectionMark != 0 { words += ", ct mark \(connectionMark)" }
        return words
    }
}

extension WalkStep {
    /// "output", "prerouting", or "prerouting (lo)" for the looped-back pass.
    var hookLabel: String { loopedBack ? "\(hook.rawValue) (lo)" : hook.rawValue }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
