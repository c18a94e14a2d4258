import Capture
import Netfilter

/// The command lines of the debugging subcommands (`inspect`, `explain`, `trace`, `graph`): what a node
/// admin types to ask why a pod's traffic is or is not captured. Parsing is pure; each mistake is a
/// `ConfigurationError` naming the argument and what is wanted (exit 2, nothing touched).
enum DebugCommand {
    case inspect(InspectOptions)
    case explain(ExplainOptions)
    case trace(TraceOptions, NamespaceTarget)
    case graph(GraphOptions)
    case help(String)

    static let names: Set<String> = ["inspect", "explain", "trace", "graph"]
}

/// Which network namespace to look at: a path (`/run/netns/x`, `/proc/<pid>/ns/net`), a process's, or
/// the current one.
enum NamespaceTarget: Equatable {
    case current
    case path(String)
    case process(Int32)

    /// Where the pod's own files are seen from here (its resolv.conf), for `--pid`.
    var rootPrefix: String {
        if case .process(let pid) = self { return "/proc/\(pid)/root" }
        return ""
    }
}

struct InspectOptions: Equatable {
    var namespace: NamespaceTarget = .current
    var json = false
    /// `--diff -- <flags>`: compare the live rules with what these flags program.
    var diffArguments: [String]?
    /// The pod's resolv.conf, for the DNS warning; default `/etc/resolv.conf` under the pod's root.
    var resolvConfPath: String?
}

struct ExplainOptions: Equatable {
    var namespace: NamespaceTarget = .current
    var json = false
    var verbose = false
    var transport: TransportProtocol = .tcp
    var destination = Endpoint(IPAddress("0.0.0.0")!, 0)
    /// Inbound: the interface the packet arrives on. Outbound when nil.
    var inputInterface: String?
    /// Outbound: overrides the route lookup's interface.
    var outputInterface: String?
    var source: IPAddress?
    var sourcePort: UInt16?
    var uid: UInt32 = 1000
    var gid: UInt32?
    var state: ConnectionStates = .new
    var mark: UInt32 = 0
    /// `--flags`/`-- <flags>`: walk the ruleset these flags build instead of the live one.
    var flagArguments: [String]?
}

struct GraphOptions: Equatable {
    enum Format: String { case dot, svg }
    var namespace: NamespaceTarget = .current
    var format: Format = .dot
    var outputPath: String?
    var flagArguments: [String]?
}


enum DebugCommandLine {
    static func parse(_ arguments: [String]) throws(ConfigurationError) -> DebugCommand {
        guard let name = arguments.first, DebugCommand.names.contains(name) else {
            throw ConfigurationError("unknown subcommand \(arguments.first ?? "")")
        }
        var scanner = Scanner(arguments: Array(arguments.dropFirst()), command: name)
        // Help is asked for before `--`; after it, `-h` is one of the istio-iptables flags.
        if scanner.remaining.prefix(while: { $0 != "--" }).contains(where: { $0 == "-h" || $0 == "--help" }) {
            return .help(usage(name))
        }
        switch name {
        case "inspect": return .inspect(try parseInspect(&scanner))
        case "explain": return .explain(try parseExplain(&scanner))
        case "trace":
            let (options, namespace) = try parseTrace(&scanner)
            return .trace(options, namespace)
        default: return .graph(try parseGraph(&scanner))
        }
    }

    private static func parseInspect(_ scanner: inout Scanner) throws(ConfigurationError) -> InspectOptions {
        var options = InspectOptions()
        while let argument = scanner.next() {
            switch argument {
            case "--netns", "--pid": options.namespace = try scanner.namespace(argument)
            case "--json": options.json = true
            case "--resolv-conf": options.resolvConfPath = try scanner.value(for: argument)
            case "--diff":
                guard scanner.next() == "--" else {
                    throw ConfigurationError("--diff takes the istio-iptables flags after `--`: sluice-init inspect --diff -- -p 15001 -u 1337 -i '*'")
                }
                options.diffArguments = scanner.rest()
            default: throw scanner.unexpected(argument)
            }
        }
        return options
    }

    private static func parseExplain(_ scanner: inout Scanner) throws(ConfigurationError) -> ExplainOptions {
        var options = ExplainOptions()
        var positional: [String] = []
        while let argument = scanner.next() {
            switch argument {
            case "--netns", "--pid": options.namespace = try scanner.namespace(argument)
            case "--json": options.json = true
            case "--verbose", "-v": options.verbose = true
            case "--uid": options.uid = try scanner.number(for: argument)
            case "--gid": options.gid = try scanner.number(for: argument)
            case "--mark": options.mark = try scanner.number(for: argument)
            case "--in": options.inputInterface = try scanner.interface(for: argument)
            case "--out": options.outputInterface = try scanner.interface(for: argument)
            case "--from":
                let text = try scanner.value(for: argument)
                if let endpoint = Endpoint(text) {
                    options.source = endpoint.address
                    options.sourcePort = endpoint.port
                } else if let address = IPAddress(text) {
                    options.source = address
                } else {
                    throw ConfigurationError("--from \(text): want an address or address:port, e.g. 127.0.0.6 or [2001:db8::2]:40000")
                }
            case "--state":
                let text = try scanner.value(for: argument)
                guard let state = ["new": ConnectionStates.new, "established": .established, "related": .related,
                                   "invalid": .invalid][text] else {
                    throw ConfigurationError("--state \(text): want new, established, related or invalid")
                }
                options.state = state
            case "--flags": options.flagArguments = shellWords(try scanner.value(for: argument))
            case "--": options.flagArguments = scanner.rest()
            default:
                guard !argument.hasPrefix("-") else { throw scanner.unexpected(argument) }
                positional.append(argument)
            }
        }
        guard positional.count == 2, let transport = TransportProtocol(rawValue: positional[0].lowercased()) else {
            throw ConfigurationError("explain wants a protocol and a destination: sluice-init explain tcp 10.1.2.3:443 [--uid 1000]")
        }
        guard let destination = Endpoint(positional[1]) else {
            throw ConfigurationError("destination \(positional[1]): want address:port, e.g. 10.1.2.3:443 or [2001:db8::1]:443")
        }
        options.transport = transport
        options.destination = destination
        if let source = options.source, source.family != destination.address.family {
            throw ConfigurationError("--from \(source) and destination \(destination) are of different address families")
        }
        return options
    }

    private static func parseTrace(_ scanner: inout Scanner) throws(ConfigurationError) -> (TraceOptions, NamespaceTarget) {
        var filter = TraceFilter()
        var options = TraceOptions(filter: filter, count: nil, timeout: nil)
        var namespace = NamespaceTarget.current
        while let argument = scanner.next() {
            switch argument {
            case "--netns", "--pid": namespace = try scanner.namespace(argument)
            case "--uid": filter.uid = try scanner.number(for: argument)
            case "--in": filter.inputInterface = try scanner.interface(for: argument)
            case "--from":
                let text = try scanner.value(for: argument)
                guard let address = IPAddress(text) else { throw ConfigurationError("--from \(text): want an address, e.g. 192.0.2.1") }
                filter.source = address
            case "--count":
                let count: UInt32 = try scanner.number(for: argument)
                guard count > 0 else { throw ConfigurationError("--count 0: want at least 1 packet") }
                options.count = Int(count)
            case "--timeout":
                let seconds: UInt32 = try scanner.number(for: argument)
                guard seconds > 0 else { throw ConfigurationError("--timeout 0: want a number of seconds above 0") }
                options.timeout = .seconds(Int(seconds))
            default:
                guard !argument.hasPrefix("-") else { throw scanner.unexpected(argument) }
                if let transport = TransportProtocol(rawValue: argument.lowercased()), filter.transport == nil, filter.destination == nil {
                    filter.transport = transport
                } else if filter.destination == nil, let endpoint = Endpoint(argument) {
                    filter.destination = endpoint.address
                    filter.destinationPort = endpoint.port
                } else if filter.destination == nil, let address = IPAddress(argument) {
                    filter.destination = address
                } else {
                    throw ConfigurationError("trace argument \(argument): want tcp or udp, then a destination address[:port]")
                }
            }
        }
        // The socket owner exists only for packets sent here, the input interface only for arriving ones.
        if filter.uid != nil && filter.inputInterface != nil {
            throw ConfigurationError("trace --uid and --in select no packet together (--uid: sent from here, --in: arriving); use one")
        }
        options.filter = filter
        return (options, namespace)
    }

    private static func parseGraph(_ scanner: inout Scanner) throws(ConfigurationError) -> GraphOptions {
        var options = GraphOptions()
        while let argument = scanner.next() {
            switch argument {
            case "--netns", "--pid": options.namespace = try scanner.namespace(argument)
            case "--format":
                let text = try scanner.value(for: argument)
                guard let format = GraphOptions.Format(rawValue: text) else { throw ConfigurationError("--format \(text): want dot or svg") }
                options.format = format
            case "--output", "-o": options.outputPath = try scanner.value(for: argument)
            case "--flags": options.flagArguments = shellWords(try scanner.value(for: argument))
            case "--": options.flagArguments = scanner.rest()
            default: throw scanner.unexpected(argument)
            }
        }
        return options
    }

    static func usage(_ command: String) -> String {
        switch command {
        case "inspect":
            return """
                Usage: sluice-init inspect [--netns PATH | --pid PID] [--json] [--resolv-conf PATH] [--diff -- FLAGS...]

                Shows the capture rules of a network namespace with per-rule packet and byte counters, the
                istio-iptables flags they correspond to, and warnings about what breaks capture: iptables-legacy
                rules, other nat chains on the same hooks, a missing ::6 or TPROXY route, uncaptured nameservers.
                --diff compares the live rules with what FLAGS would program (exit 3 when they differ).
                """
        case "explain":
            return """
                Usage: sluice-init explain [--netns PATH | --pid PID] tcp|udp ADDRESS:PORT [--uid N] [--gid N]
                                           [--from ADDRESS[:PORT]] [--in IFACE | --out IFACE] [--state STATE]
                                           [--mark N] [--verbose] [--json] [--flags 'FLAGS' | -- FLAGS...]

                Walks one packet through the live rules (or those FLAGS would program) and prints each rule it
                passes, the verdict and where it ends up. Outbound from a process with --uid/--gid (default uid
                1000); inbound with --in IFACE. --verbose also lists the rules that did not match, and why.
                """
        case "trace":
            return """
                Usage: sluice-init trace [--netns PATH | --pid PID] [tcp|udp] [ADDRESS[:PORT]] [--from ADDRESS]
                                         [--in IFACE] [--uid N] [--count N] [--timeout SECONDS]

                Traces real packets matching the filter through every nftables chain as they happen (nftrace),
                until Ctrl-C, --count packets or --timeout. Its trace rule is removed on exit.
                """
        default:
            return """
                Usage: sluice-init graph [--netns PATH | --pid PID] [--format dot|svg] [--output FILE]
                                         [--flags 'FLAGS' | -- FLAGS...]

                Draws the capture chains and their jumps as Graphviz DOT (or SVG, with Graphviz's dot installed),
                with the packet counters on the edges.
                """
        }
    }

    /// `--flags '-p 15001 -i "*"'` split as a shell would: on blanks, with single and double quotes.
    static func shellWords(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" || character == "\n" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Reads arguments one at a time.
    struct Scanner {
        var remaining: [String]
        let command: String

        init(arguments: [String], command: String) {
            remaining = arguments
            self.command = command
        }

        mutating func next() -> String? { remaining.isEmpty ? nil : remaining.removeFirst() }

        mutating func rest() -> [String] {
            defer { remaining = [] }
            return remaining
        }

        mutating func value(for option: String) throws(ConfigurationError) -> String {
            guard let value = next() else { throw ConfigurationError("\(option) needs a value (see sluice-init \(command) --help)") }
            return value
        }

        mutating func number<Number: FixedWidthInteger & UnsignedInteger>(for option: String) throws(ConfigurationError) -> Number {
            let text = try value(for: option)
            guard let number = Number(text) else { throw ConfigurationError("\(option) \(text): want a number from 0 to \(Number.max)") }
            return number
        }

        mutating func interface(for option: String) throws(ConfigurationError) -> String {
            let name = try value(for: option)
            guard !name.isEmpty, name.utf8.count < 16, !name.contains("/"), !name.contains(" ") else {
                throw ConfigurationError("\(option) \(name): want an interface name of 1 to 15 characters, e.g. eth0")
            }
            return name
        }

        mutating func namespace(_ option: String) throws(ConfigurationError) -> NamespaceTarget {
            let text = try value(for: option)
            if option == "--pid" {
                guard let pid = Int32(text), pid > 0 else { throw ConfigurationError("--pid \(text): want a process ID, e.g. --pid 4242") }
                return .process(pid)
            }
            guard !text.isEmpty else { throw ConfigurationError("--netns needs a path, e.g. /run/netns/pod or /proc/4242/ns/net") }
            return .path(text)
        }

        func unexpected(_ argument: String) -> ConfigurationError {
            ConfigurationError("unknown argument \(argument) for sluice-init \(command) (see sluice-init \(command) --help)")
        }
    }
}
