/// The packet as the rules have changed it so far.
struct WalkedPacket {
    var source: Endpoint
    var destination: Endpoint
    var mark: UInt32
    var connectionMark: UInt32
    /// The route's output interface for a locally sent packet ("" for an arriving one).
    var outputInterface: String
    var conntrackZone: UInt16?
    var redirection: (original: Endpoint, by: RuleLocation)?
    var transparentProxy: (port: UInt16, by: RuleLocation)?

    var family: IPFamily { destination.address.family }
}

/// What the rules of one base chain (and the chains it jumps to) see besides the packet.
struct ChainContext {
    var hook: BaseChain.Hook
    var loopedBack: Bool
    var table: Table
    var baseChain: String
    var base: BaseChain
    /// "" in output: the kernel's `iifname` of a locally generated packet is the empty name.
    var inputInterface: String
    /// Only a locally generated packet on its first pass has one; looped back through `lo` it has lost it.
    var socketOwner: (uid: UInt32, gid: UInt32)?
    /// Conntrack attaches its entry at priority -200 (NF_IP_PRI_CONNTRACK); a looped-back packet keeps
    /// the one it got in output. Invalid and untracked packets never have one.
    var conntrackAttached: Bool

    var qualifiedChain: String { "\(table.name)/\(baseChain)" }
}

/// One walk: the packet's state, the steps recorded and the notes gathered.
struct WalkInProgress {
    let walker: RulesetWalker
    let probe: PacketProbe
    var packet: WalkedPacket
    var steps: [WalkStep] = []
    var notes: [String] = []
    /// Rules evaluated so far may not exceed this: the kernel refuses jump loops, but a hand-made ruleset
    /// may hold one, and many jumps could multiply the rules walked.
    var remainingRuleBudget = Self.ruleBudget

    static let ruleBudget = 100_000

    /// The kernel's jump stack depth (NFT_JUMP_STACK_SIZE).
    static let jumpStackLimit = 16
    /// Conntrack's hook priority on prerouting and output (NF_IP_PRI_CONNTRACK).
    static let conntrackPriority: Int32 = -200

    init(walker: RulesetWalker, probe: PacketProbe) {
        self.walker = walker
        self.probe = probe
        var outputInterface = ""
        if case .local(_, _, let interface) = probe.origin { outputInterface = interface }
        packet = WalkedPacket(source: probe.source, destination: probe.destination, mark: probe.mark,
                              connectionMark: probe.connectionMark, outputInterface: outputInterface)
    }

    mutating func run() -> PacketFate {
        switch probe.origin {
        case .local:
            if let end = runHook(.output, loopedBack: false) { return end }
            if packet.outputInterface == "lo" || walker.environment.isLocal(packet.destination.address) {
                note("the packet comes back in through lo: prerouting sees it with iif lo and without a socket "
                     + "(meta skuid/skgid never match), and skips the nat chains (NAT is decided once per connection, in output)")
                if let end = runHook(.prerouting, loopedBack: true) { return end }
                return capturedFate() ?? .delivered(packet.destination)
            }
            return capturedFate() ?? .leaves(packet.destination, interface: packet.outputInterface)
        case .arriving:
            if let end = runHook(.prerouting, loopedBack: false) { return end }
            if let captured = capturedFate() { return captured }
            if walker.environment.isLocal(packet.destination.address) { return .delivered(packet.destination) }
            note("\(packet.destination.address) is not an address of this namespace: the kernel routes the packet "
                 + "onward, or drops it where forwarding is off (as in a pod)")
            return .forwarded(packet.destination)
        }
    }

    /// A TPROXY'd packet carries the transparent listener's socket from then on, and the kernel delivers
    /// it to that socket even if a later rule rewrote the destination; so TPROXY wins over REDIRECT.
    private func capturedFate() -> PacketFate? {
        if let tproxy = packet.transparentProxy { return .transparentProxy(port: tproxy.port, by: tproxy.by) }
        if let redirection = packet.redirection { return .redirected(to: packet.destination, by: redirection.by) }
        return nil
    }

    mutating func note(_ text: String) {
        if !notes.contains(text) { notes.append(text) }
    }

    // MARK: - Hooks and base chains

    /// Runs every base chain of `hook`; a fate when the walk ends inside (dropped, undetermined).
    private mutating func runHook(_ hook: BaseChain.Hook, loopedBack: Bool) -> PacketFate? {
        let chains = walker.baseChains(for: hook)
        if chains.isEmpty && !loopedBack {
            note("no base chain is attached to the \(hook.rawValue) hook: no rule sees the packet there")
        }
        var natDecidedBy: RuleLocation?
        for reference in chains {
            let table = walker.ruleset.tables[reference.tableIndex]
            let chain = table.chains[reference.chainIndex]
            let context = makeContext(hook: hook, loopedBack: loopedBack, table: table, chain: chain, reference: reference)
            if reference.base.type == .nat {
                // Looped-back packets: covered by the loopback note.
                if loopedBack { continue }
                guard context.conntrackAttached, probe.connectionState == .new else {
                    noteNATSkipped(context.qualifiedChain)
                    continue
                }
                if let decider = natDecidedBy {
                    note("\(context.qualifiedChain) was skipped: the redirect of \(decider.qualifiedDescription) "
                         + "already decided this connection's NAT")
                    continue
                }
            }
            switch runBaseChain(reference.chainIndex, context: context) {
            case .accepted:
                continue
            case .policy:
                if reference.base.type == .nat {
                    note("the policy accept of \(context.qualifiedChain) ended the chain without NAT")
                }
            case .redirected(let location):
                natDecidedBy = location
            case .dropped(let location):
                return .dropped(by: location)
            case .undetermined(let location, let reason):
                return .undetermined(at: location, reason: reason)
            }
        }
        return nil
    }

    private func makeContext(hook: BaseChain.Hook, loopedBack: Bool, table: Table, chain: Chain,
                             reference: BaseChainReference) -> ChainContext {
        var inputInterface = ""
        var socketOwner: (uid: UInt32, gid: UInt32)?
        switch probe.origin {
        case .local(let uid, let gid, _):
            if loopedBack { inputInterface = "lo" } else { socketOwner = (uid, gid) }
        case .arriving(let interface):
            inputInterface = interface
        }
        let tracked = !probe.connectionState.isDisjoint(with: [.new, .established, .related])
        let attached = tracked && (loopedBack || reference.effectivePriority >= Self.conntrackPriority)
        return ChainContext(hook: hook, loopedBack: loopedBack, table: table, baseChain: chain.name, base: reference.base,
                            inputInterface: inputInterface, socketOwner: socketOwner, conntrackAttached: attached)
    }

    private mutating func noteNATSkipped(_ chain: String) {
        let states = NftTextRenderer.stateNames(probe.connectionState).joined(separator: ",")
        if probe.connectionState.isDisjoint(with: [.new, .established, .related]) {
            note("\(chain) was skipped: a packet without a conntrack entry (ct state \(states)) is never NATed")
        } else {
            note("nat chains see only the first packet of a connection: \(chain) was skipped for ct state \(states); "
                 + "the packet follows the NAT its connection's first packet got")
        }
    }

    private enum ChainEnd {
        case accepted
        /// The base chain ran out of rules or returned: its policy, accept, lets the packet on.
        case policy
        case redirected(RuleLocation)
        case dropped(RuleLocation)
        case undetermined(RuleLocation, String)
    }

    private mutating func runBaseChain(_ baseChainIndex: Int, context: ChainContext) -> ChainEnd {
        let table = context.table
        var callers: [(chain: Int, nextRule: Int)] = []
        var chainIndex = baseChainIndex
        var ruleIndex = 0
        // Bounded: every pass evaluates a rule, counted against the budget, or pops a caller that such a
        // rule pushed.
        while true {
            let chain = table.chains[chainIndex]
            guard ruleIndex < chain.rules.count else {
                // The end of a regular chain returns to the rule after the jump.
                guard let caller = callers.popLast() else { return .policy }
                (chainIndex, ruleIndex) = caller
                continue
            }
            let location = RuleLocation(table: table.name, chain: chain.name, index: ruleIndex)
            guard remainingRuleBudget > 0 else {
                return .undetermined(location, "the walk evaluated more than \(Self.ruleBudget) rules; the jumps look like a loop")
            }
            remainingRuleBudget -= 1
            ruleIndex += 1
            if walker.unknownRules.contains(location) {
                return .undetermined(location, "the kernel holds a rule here whose expressions are outside Sluice's "
                                     + "vocabulary, so the walker cannot evaluate it (inspect shows its text)")
            }
            switch apply(chain.rules[ruleIndex - 1], at: location, context: context) {
            case .next:
                continue
            case .accept:
                return .accepted
            case .drop:
                return .dropped(location)
            case .redirected:
                return .redirected(location)
            case .return:
                guard let caller = callers.popLast() else { return .policy }
                (chainIndex, ruleIndex) = caller
            case .jump(let target):
                guard let targetIndex = table.chains.firstIndex(where: { $0.name == target }) else {
                    return .undetermined(location, "it jumps to chain \(target), which table \(table.name) does not have")
                }
                guard callers.count < Self.jumpStackLimit else {
                    return .undetermined(location, "the jump to \(target) goes deeper than the kernel's "
                                         + "\(Self.jumpStackLimit) nested chains")
                }
                callers.append((chainIndex, ruleIndex))
                chainIndex = targetIndex
                ruleIndex = 0
            case .undetermined(let reason):
                return .undetermined(location, reason)
            }
        }
    }

    // MARK: - Rules

    private enum RuleEnd {
        /// The rule did not match, or matched without a verdict: on to the next rule.
        case next
        case accept, drop, `return`, redirected
        case jump(String)
        case undetermined(String)
    }

    private mutating func record(_ rule: Rule, at location: RuleLocation, _ context: ChainContext,
                                 mismatch: String? = nil, effects: [String] = []) {
        let hook: WalkStep.Hook = context.hook == .output ? .output : .prerouting
        let effect = mismatch == nil ? (effects.isEmpty ? "continue" : effects.joined(separator: ", ")) : nil
        steps.append(WalkStep(hook: hook, loopedBack: context.loopedBack, location: location, rule: rule,
                              mismatch: mismatch, effect: effect))
    }

    /// The rule's matches in order, then (when all hold) its statements in order, as the kernel runs
    /// its expressions.
    private mutating func apply(_ rule: Rule, at location: RuleLocation, context: ChainContext) -> RuleEnd {
        for match in rule.matches {
            switch evaluate(match, context: context) {
            case .holds:
                continue
            case .fails(let mismatch):
                record(rule, at: location, context, mismatch: mismatch)
                return .next
            case .undetermined(let reason):
                return .undetermined(reason)
            }
        }
        var effects: [String] = []
        for statement in rule.statements {
            let text = NftTextRenderer.render(statement)
            switch statement {
            case .counter:
                continue
            case .redirect(let port):
                guard let address = redirectAddress(context) else {
                    effects.append("\(text): the packet is dropped")
                    note("redirect in prerouting rewrites the destination to the first \(packet.family.nftKeyword) address "
                         + "of the input interface \(context.inputInterface) (of the destination's scope); it has none, "
                         + "so the kernel drops the packet")
                    record(rule, at: location, context, effects: effects)
                    return .drop
                }
                packet.redirection = (packet.destination, location)
                packet.destination = Endpoint(address, port)
                // The kernel routes the rewritten packet again: to a local address, through lo.
                if context.hook == .output { packet.outputInterface = "lo" }
                effects.append(text)
                record(rule, at: location, context, effects: effects)
                return .redirected
            case .tproxy(let family, let port):
                guard family == packet.family else {
                    // nft_tproxy ends the rule (NFT_BREAK) for a packet of the other family.
                    record(rule, at: location, context,
                           mismatch: "\(text) (packet: \(packet.family == .ipv4 ? "IPv4" : "IPv6"))")
                    return .next
                }
                guard context.hook == .prerouting else {
                    return .undetermined("tproxy is only valid in prerouting; the kernel would refuse this rule")
                }
                packet.transparentProxy = (port, location)
                note("TPROXY needs a transparent socket (IP_TRANSPARENT) listening on port \(port), or the rule does "
                     + "not match, and the policy route for its mark (ip rule fwmark → local default dev lo) to deliver the packet")
                effects.append(text)
            case .setConntrackZone:
                if context.conntrackAttached || packet.conntrackZone != nil {
                    // The first zone set on a packet wins: `ct zone set` only acts before conntrack attaches an entry.
                    effects.append("\(text) (no effect: the packet already has its conntrack zone)")
                } else {
                    if case .setConntrackZone(let zone) = statement { packet.conntrackZone = zone }
                    effects.append(text)
                }
            case .setPacketMark(let mark):
                setMark(mark, context)
                effects.append(text)
            case .saveMarkToConnection:
                if context.conntrackAttached {
                    packet.connectionMark = packet.mark
                    effects.append("\(text) (\(packet.mark))")
                } else {
                    effects.append("\(text) (no effect: no conntrack entry)")
                }
            case .restoreMarkFromConnection:
                if context.conntrackAttached {
                    setMark(packet.connectionMark, context)
                    effects.append("\(text) (\(packet.connectionMark))")
                } else {
                    effects.append("\(text) (no effect: no conntrack entry)")
                }
            case .verdict(let verdict):
                effects.append(text)
                record(rule, at: location, context, effects: effects)
                switch verdict {
                case .accept: return .accept
                case .drop: return .drop
                case .return: return .return
                case .jump(let target): return .jump(target)
                }
            }
        }
        record(rule, at: location, context, effects: effects)
        return .next
    }

    private mutating func setMark(_ mark: UInt32, _ context: ChainContext) {
        if context.base.type == .route && context.hook == .output && mark != packet.mark {
            note("\(context.qualifiedChain) is a route chain: its mark change (\(packet.mark) → \(mark)) makes the kernel "
                 + "route the packet again; routing rules by mark (ip rule fwmark) are not part of this walk")
        }
        packet.mark = mark
    }

    /// nf_nat_redirect: 127.0.0.1 / ::1 in output; in prerouting the input interface's first address of
    /// the packet's family (for IPv6, of the destination's scope).
    private func redirectAddress(_ context: ChainContext) -> IPAddress? {
        if context.hook == .output {
            return packet.family == .ipv4 ? IPAddress(family: .ipv4, bytes: [127, 0, 0, 1]) : .ipv6Loopback
        }
        return walker.environment.redirectAddress(arrivingOn: context.inputInterface, for: packet.destination.address)
    }

    // MARK: - Matches

    private enum MatchResult {
        case holds
        /// The match in nft words, then the packet's value.
        case fails(String)
        case undetermined(String)
    }

    private func evaluate(_ match: Match, context: ChainContext) -> MatchResult {
        let text = NftTextRenderer.render(match)
        func result(_ holds: Bool, packetValue: @autoclosure () -> String) -> MatchResult {
            holds ? .holds : .fails("\(text) (packet: \(packetValue()))")
        }
        let transport = probe.transport
        switch match {
        case .transportProtocol(let proto):
            return result(proto == transport, packetValue: transport.rawValue)
        case .inputInterface(let pattern):
            let name = context.inputInterface
            return result(Self.interface(name, matches: pattern),
                          packetValue: name.isEmpty ? "no input interface in output" : name)
        case .outputInterface(let pattern):
            let name = context.hook == .output ? packet.outputInterface : ""
            return result(Self.interface(name, matches: pattern),
                          packetValue: name.isEmpty ? "no output interface in prerouting" : name)
        case .sourceAddress(let cidr, let negated):
            return addressResult(packet.source.address, cidr, negated: negated, text: text)
        case .destinationAddress(let cidr, let negated):
            return addressResult(packet.destination.address, cidr, negated: negated, text: text)
        case .destinationAddressInSet(let family, let name):
            let address = packet.destination.address
            guard address.family == family else {
                return .fails("\(text) (packet: \(address), not \(family == .ipv4 ? "IPv4" : "IPv6"))")
            }
            guard let set = context.table.sets.first(where: { $0.name == name }) else {
                return .undetermined("set @\(name) is not in table \(context.table.name)")
            }
            guard case .addresses(let setFamily, let ranges) = set.elements, setFamily == family else {
                return .undetermined("set @\(name) does not hold \(family.rawValue) addresses")
            }
            let inSet = ranges.contains { $0.first <= address && address <= $0.last }
            return result(inSet, packetValue: "\(address), not in the set")
        case .destinationPort(let proto, let port, let negated):
            // The port match carries an implicit `meta l4proto`: it never holds for the other protocol, negated or not.
            guard proto == transport else { return .fails("\(text) (packet: \(transport.rawValue))") }
            return result((packet.destination.port == port) != negated, packetValue: "port \(packet.destination.port)")
        case .destinationPortInSet(let proto, let name):
            guard proto == transport else { return .fails("\(text) (packet: \(transport.rawValue))") }
            guard let set = context.table.sets.first(where: { $0.name == name }) else {
                return .undetermined("set @\(name) is not in table \(context.table.name)")
            }
            guard case .ports(let ports) = set.elements else {
                return .undetermined("set @\(name) does not hold ports")
            }
            return result(ports.contains(packet.destination.port),
                          packetValue: "port \(packet.destination.port), not in the set")
        case .sourcePort(let proto, let port):
            guard proto == transport else { return .fails("\(text) (packet: \(transport.rawValue))") }
            return result(packet.source.port == port, packetValue: "port \(packet.source.port)")
        case .socketUID(let uid, let negated):
            // Without a socket the meta expression ends the rule: neither `skuid 1337` nor `skuid != 1337` holds.
            guard let owner = context.socketOwner else { return .fails("\(text) (packet: no socket)") }
            return result((owner.uid == uid) != negated, packetValue: "uid \(owner.uid)")
        case .socketGID(let gid, let negated):
            guard let owner = context.socketOwner else { return .fails("\(text) (packet: no socket)") }
            return result((owner.gid == gid) != negated, packetValue: "gid \(owner.gid)")
        case .connectionState(let states):
            let seen = seenConnectionState(context)
            let seenText = NftTextRenderer.stateNames(seen).joined(separator: ",")
            return result(!states.isDisjoint(with: seen),
                          packetValue: context.conntrackAttached || seen == probe.connectionState
                              ? seenText : "\(seenText): no conntrack entry before priority \(Self.conntrackPriority)")
        case .packetMark(let mark, let negated):
            return result((packet.mark == mark) != negated, packetValue: "mark \(packet.mark)")
        case .connectionMark(let mark):
            guard context.conntrackAttached else { return .fails("\(text) (packet: no conntrack entry)") }
            return result(packet.connectionMark == mark, packetValue: "ct mark \(packet.connectionMark)")
        }
    }

    /// What `ct state` reads: the connection's state once conntrack has attached an entry; before that
    /// (or for a packet it refused) the kernel reports `invalid`, or `untracked`.
    private func seenConnectionState(_ context: ChainContext) -> ConnectionStates {
        if context.conntrackAttached { return probe.connectionState }
        return probe.connectionState == .untracked ? .untracked : .invalid
    }

    /// An `ip`/`ip6` address match carries an implicit `meta nfproto`: it never holds for a packet of
    /// the other family, negated or not.
    private func addressResult(_ address: IPAddress, _ cidr: CIDR, negated: Bool, text: String) -> MatchResult {
        guard address.family == cidr.family else {
            return .fails("\(text) (packet: \(address), not \(cidr.family == .ipv4 ? "IPv4" : "IPv6"))")
        }
        return cidr.contains(address) != negated ? .holds : .fails("\(text) (packet: \(address))")
    }

    /// `iifname`/`oifname`: the exact name, or a prefix when the pattern ends in `*`.
    static func interface(_ name: String, matches pattern: String) -> Bool {
        if pattern.hasSuffix("*") { return name.hasPrefix(pattern.dropLast()) }
        return name == pattern
    }
}
