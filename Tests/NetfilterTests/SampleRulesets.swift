import Capture

/// Hand-built rulesets that exercise every `Match` and `Statement` case, shared by the encoding and the
/// kernel tests.
enum SampleRulesets {
    static func cidr(_ text: String) -> CIDR {
        guard let cidr = CIDR(text) else { preconditionFailure("bad CIDR literal \(text)") }
        return cidr
    }

    static func ranges(_ texts: [String]) -> [AddressRange] { AddressRange.merging(texts.map(cidr)) }

    /// Every match and statement at least once, in all three owned tables, with sets of both address
    /// families and of ports.
    static var everything: Ruleset {
        let nat = Table(
            name: "istio-proxy-nat", comment: "sluice test everything",
            sets: [
                NamedSet(name: "outbound-exclude-ipv4",
                         elements: .addresses(.ipv4, ranges(["10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24",
                                                             "172.16.0.1/32", "172.16.0.2/31", "255.255.255.0/24"]))),
                NamedSet(name: "outbound-exclude-ipv6",
                         elements: .addresses(.ipv6, ranges(["::1/128", "2001:db8::/32", "fd00::/8"]))),
                NamedSet(name: "inbound-exclude-ports", elements: .ports([53, 15008, 15020, 15021, 15090])),
                NamedSet(name: "everything-ipv4", elements: .addresses(.ipv4, ranges(["0.0.0.0/0"]))),
            ],
            chains: [
                Chain(name: "prerouting", base: BaseChain(type: .nat, hook: .prerouting, priority: -100), rules: [
                    Rule([.inputInterface("eth1")], [.counter, .verdict(.return)], comment: "excluded interface"),
                    Rule([.transportProtocol(.tcp)], [.counter, .verdict(.jump("istio-inbound"))], comment: "inbound"),
                ]),
                Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -100), rules: [
                    Rule([], [.counter, .verdict(.jump("istio-output"))], comment: "all outbound"),
                ]),
                Chain(name: "istio-inbound", rules: [
                    Rule([.transportProtocol(.tcp), .destinationPort(.tcp, 15008, negated: false)],
                         [.counter, .verdict(.return)], comment: "tunnel port"),
                    Rule([.destinationPortInSet(.tcp, set: "inbound-exclude-ports")], [.counter, .verdict(.return)],
                         comment: "excluded inbound ports"),
                    Rule([.transportProtocol(.tcp)], [.counter, .verdict(.jump("istio-in-redirect"))], comment: ""),
                ]),
                Chain(name: "istio-in-redirect", rules: [
                    Rule([.transportProtocol(.tcp)], [.counter, .redirect(toPort: 15006)], comment: "to inbound capture"),
                ]),
                Chain(name: "istio-redirect", rules: [
                    Rule([.transportProtocol(.tcp)], [.counter, .redirect(toPort: 15001)], comment: "to outbound capture"),
                ]),
                Chain(name: "istio-output", rules: [
                    Rule([.outputInterface("lo"), .sourceAddress(cidr("127.0.0.6/32"), negated: false)],
                         [.counter, .verdict(.return)], comment: "inbound passthrough"),
                    Rule([.outputInterface("lo"), .sourceAddress(cidr("::6/128"), negated: false)],
                         [.counter, .verdict(.return)], comment: "inbound passthrough v6"),
                    Rule([.outputInterface("lo"), .transportProtocol(.tcp),
                          .destinationAddress(cidr("127.0.0.1/32"), negated: true),
                          .destinationPort(.tcp, 15008, negated: true), .socketUID(1337, negated: false)],
                         [.counter, .verdict(.jump("istio-in-redirect"))], comment: "app to own pod IP"),
                    Rule([.outputInterface("lo"), .socketUID(1337, negated: true)], [.counter, .verdict(.return)],
                         comment: "not the proxy"),
                    Rule([.socketUID(1337, negated: false)], [.counter, .verdict(.return)], comment: "proxy uid"),
                    Rule([.socketGID(1337, negated: false)], [.counter, .verdict(.return)], comment: "proxy gid"),
                    Rule([.socketGID(202, negated: true), .socketGID(203, negated: true)], [.counter, .verdict(.return)],
                         comment: "owner groups"),
                    Rule([.destinationAddress(cidr("127.0.0.1/32"), negated: false)], [.counter, .verdict(.return)],
                         comment: "loopback"),
                    Rule([.destinationAddressInSet(.ipv4, set: "outbound-exclude-ipv4")], [.counter, .verdict(.return)],
                         comment: "excluded v4"),
                    Rule([.destinationAddressInSet(.ipv6, set: "outbound-exclude-ipv6")], [.counter, .verdict(.return)],
                         comment: "excluded v6"),
                    Rule([.destinationAddress(cidr("10.16.0.0/12"), negated: false)], [.counter, .verdict(.jump("istio-redirect"))],
                         comment: "odd prefix"),
                    Rule([.destinationAddress(cidr("10.0.0.0/8"), negated: true),
                          .sourceAddress(cidr("10.1.2.3/31"), negated: true)], [.counter], comment: "negated prefixes"),
                    Rule([.destinationAddress(cidr("2001:db8::/33"), negated: false)], [.counter], comment: "v6 prefix"),
                    Rule([.destinationAddress(cidr("0.0.0.0/0"), negated: false)], [.counter], comment: "v4 everything"),
                    Rule([.destinationAddress(cidr("::/0"), negated: true)], [.counter], comment: "v6 nothing"),
                    Rule([.destinationAddress(cidr("192.0.2.10/32"), negated: false), .transportProtocol(.udp),
                          .destinationPort(.udp, 53, negated: false)], [.counter, .redirect(toPort: 15053)],
                         comment: "dns v4"),
                    Rule([.destinationAddress(cidr("2001:db8::53/128"), negated: false), .destinationPort(.tcp, 53, negated: false)],
                         [.counter, .redirect(toPort: 15053)], comment: "dns v6 tcp"),
                    Rule([.sourcePort(.udp, 53), .destinationPort(.udp, 53, negated: false)], [.counter],
                         comment: "merged ports"),
                    Rule([.destinationPort(.tcp, 80, negated: false), .sourceAddress(cidr("198.51.100.1/32"), negated: false),
                          .sourcePort(.tcp, 8080)], [.counter], comment: "merged across"),
                    Rule([.sourceAddress(cidr("198.51.100.1/32"), negated: false),
                          .destinationAddress(cidr("203.0.113.1/32"), negated: false)], [.counter], comment: "two addresses"),
                    Rule([.destinationPortInSet(.udp, set: "inbound-exclude-ports")], [.counter], comment: "udp port set"),
                    Rule([.destinationAddressInSet(.ipv4, set: "everything-ipv4")], [.counter], comment: "whole v4 set"),
                    Rule([.connectionState([.related, .established])], [.counter, .verdict(.accept)], comment: "established"),
                    Rule([.connectionState(.invalid)], [.counter, .verdict(.drop)], comment: "invalid"),
                    Rule([.connectionState([.new, .untracked, .invalid, .related, .established])], [.counter], comment: "all states"),
                    Rule([.transportProtocol(.tcp)], [.counter, .verdict(.jump("istio-redirect"))], comment: "capture"),
                ]),
            ])
        let mangle = Table(
            name: "istio-proxy-mangle", comment: "sluice test everything",
            chains: [
                Chain(name: "prerouting", base: BaseChain(type: .filter, hook: .prerouting, priority: -150), rules: [
                    Rule([.transportProtocol(.tcp), .connectionMark(1337)], [.restoreMarkFromConnection, .counter],
                         comment: "restore"),
                    Rule([.transportProtocol(.tcp), .destinationAddress(cidr("127.0.0.1/32"), negated: true)],
                         [.tproxy(.ipv4, toPort: 15006), .setPacketMark(1337), .counter, .verdict(.accept)], comment: "tproxy v4"),
                    Rule([.transportProtocol(.tcp), .destinationAddress(cidr("::1/128"), negated: true)],
                         [.tproxy(.ipv6, toPort: 15006), .setPacketMark(1337), .counter, .verdict(.accept)], comment: "tproxy v6"),
                    Rule([.transportProtocol(.tcp), .packetMark(1337, negated: false)], [.counter, .saveMarkToConnection],
                         comment: "save"),
                    Rule([.packetMark(1338, negated: true)], [.counter], comment: "not hairpin"),
                ]),
                Chain(name: "output", base: BaseChain(type: .route, hook: .output, priority: -150), rules: [
                    Rule([.outputInterface("lo"), .socketUID(1337, negated: false)], [.counter, .setPacketMark(1338)],
                         comment: "hairpin"),
                ]),
            ])
        let raw = Table(
            name: "istio-proxy-raw", comment: "sluice test everything",
            chains: [
                Chain(name: "output", base: BaseChain(type: .filter, hook: .output, priority: -300), rules: [
                    Rule([.destinationPort(.udp, 53, negated: false), .socketUID(1337, negated: false)],
                         [.counter, .setConntrackZone(1)], comment: "proxy dns zone"),
                ]),
                Chain(name: "prerouting", base: BaseChain(type: .filter, hook: .prerouting, priority: -300), rules: [
                    Rule([.sourcePort(.udp, 53), .destinationAddress(cidr("127.0.0.53/32"), negated: false)],
                         [.counter, .setConntrackZone(2)], comment: "dns reply zone"),
                ]),
            ])
        return Ruleset(tables: [nat, mangle, raw])
    }

    /// 10,000 IPv4 CIDRs (some overlapping), 1,000 IPv6 CIDRs and 1,000 ports.
    static var big: Ruleset {
        // Every other /24 (so ranges stay apart), with a /25 inside every 50th and a /32 inside every
        // 100th that overlap it, and a /23 joining two neighbours every 70th.
        var v4: [String] = []
        for index in 0..<9_760 {
            let unit = index * 2
            let a = 11 + unit / 65_536, b = (unit / 256) % 256, c = unit % 256
            v4.append("\(a).\(b).\(c).0/24")
            if index % 50 == 0 { v4.append("\(a).\(b).\(c).128/25") }
            if index % 100 == 0 { v4.append("\(a).\(b).\(c).7/32") }
            if index % 70 == 0 { v4.append("\(a).\(b).\(c).0/23") }
        }
        let v6 = (0..<1_000).map { "2001:db8:\(String($0, radix: 16))::/48" }
        let ports = (0..<1_000).map { UInt16(20_000 + $0 * 3) }
        let nat = Table(
            name: "istio-proxy-nat", comment: "sluice test big",
            sets: [
                NamedSet(name: "outbound-exclude-ipv4", elements: .addresses(.ipv4, ranges(v4))),
                NamedSet(name: "outbound-exclude-ipv6", elements: .addresses(.ipv6, ranges(v6))),
                NamedSet(name: "inbound-ports", elements: .ports(ports)),
            ],
            chains: [
                Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -100), rules: [
                    Rule([.destinationAddressInSet(.ipv4, set: "outbound-exclude-ipv4")], [.counter, .verdict(.return)],
                         comment: "excluded v4"),
                    Rule([.destinationAddressInSet(.ipv6, set: "outbound-exclude-ipv6")], [.counter, .verdict(.return)],
                         comment: "excluded v6"),
                    Rule([.destinationPortInSet(.tcp, set: "inbound-ports")], [.counter, .redirect(toPort: 15001)],
                         comment: "ports"),
                ]),
            ])
        return Ruleset(tables: [nat])
    }

    /// Only a nat table, with one rule per chain: what a later run converges to.
    static var small: Ruleset {
        Ruleset(tables: [
            Table(name: "istio-proxy-nat", comment: "sluice test small", chains: [
                Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -100), rules: [
                    Rule([.transportProtocol(.tcp)], [.counter, .verdict(.jump("istio-output"))], comment: "outbound"),
                ]),
                Chain(name: "istio-output", rules: [
                    Rule([.socketUID(1337, negated: false)], [.counter, .verdict(.return)], comment: "proxy"),
                    Rule([.transportProtocol(.tcp)], [.counter, .redirect(toPort: 15001)], comment: "capture"),
                ]),
            ]),
        ])
    }
}
