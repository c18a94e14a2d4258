import CNetfilter
import Capture
#if canImport(Glibc)
import Glibc
#endif

/// A fib rule (`ip rule`) as the kernel lists it.
public struct FibRule: Sendable, Hashable, CustomStringConvertible {
    public var family: IPFamily
    public var priority: UInt32
    public var table: UInt32
    /// `FR_ACT_*`: 1 (`FR_ACT_TO_TBL`) for `lookup <table>`.
    public var action: UInt8
    public var mark: UInt32?
    public var mask: UInt32?
    /// Everything else that narrows or changes the rule (`from`, `iif`, `not`, `ipproto`, ...), named
    /// for messages. A rule with any of these is not a plain `fwmark M lookup T`, so it is never taken
    /// for Sluice's nor deleted as one.
    public var otherSelectors: [String]

    public init(family: IPFamily, priority: UInt32, table: UInt32, action: UInt8, mark: UInt32?, mask: UInt32?,
                otherSelectors: [String] = []) {
        self.family = family
        self.priority = priority
        self.table = table
        self.action = action
        self.mark = mark
        self.mask = mask
        self.otherSelectors = otherSelectors
    }

    /// Exactly `fwmark <mark> lookup <table>` (mask all ones), whatever its priority.
    public func isFwmarkLookup(mark: UInt32, table: UInt32) -> Bool {
        action == UInt8(FR_ACT_TO_TBL) && self.table == table && self.mark == mark
            && (mask ?? UInt32.max) == UInt32.max && otherSelectors.isEmpty
    }

    public var description: String {
        var text = "\(family == .ipv4 ? "ip" : "ip -6") rule \(priority):"
        if let mark { text += " fwmark \(mark)" + ((mask ?? .max) == .max ? "" : "/\(mask!)") }
        if !otherSelectors.isEmpty { text += " " + otherSelectors.joined(separator: " ") }
        text += action == UInt8(FR_ACT_TO_TBL) ? " lookup \(table)" : " action \(action)"
        return text
    }
}

/// A route as the kernel lists it (only what Sluice needs to recognise its own).
public struct RouteEntry: Sendable, Hashable, CustomStringConvertible {
    public var family: IPFamily
    public var table: UInt32
    /// `RTN_*`: 1 unicast, 2 local, ...
    public var type: UInt8
    /// nil for the default route.
    public var destination: CIDR?
    public var gateway: IPAddress?
    public var outputInterfaceIndex: Int32?
    public var priority: UInt32?

    public var isLocal: Bool { type == UInt8(RTN_LOCAL) }

    public var description: String { description(device: nil) }

    /// `ip route` style, with the output device named when the caller knows its name.
    public func description(device: String?) -> String {
        var text = "\(family == .ipv4 ? "ip" : "ip -6") route \(isLocal ? "local " : type == UInt8(RTN_UNICAST) ? "" : "type \(type) ")"
        text += destination.map(\.description) ?? "default"
        if let gateway { text += " via \(gateway)" }
        if let device { text += " dev \(device)" } else if let outputInterfaceIndex { text += " dev #\(outputInterfaceIndex)" }
        text += " table \(table)"
        if let priority { text += " metric \(priority)" }
        return text
    }
}

/// An address on an interface as the kernel lists it.
public struct InterfaceAddressEntry: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: Int
    public var interfaceIndex: Int32

    public var description: String { "\(address)/\(prefixLength) on #\(interfaceIndex)" }
}

/// Policy routing over rtnetlink: fib rules, and listing/deleting routes and addresses, so callers can
/// check before they add (`ip rule add` happily adds the same rule twice) and remove only their own.
extension RouteNetlink {
    /// The name of interface `index` (`ip link show` order), nil when there is none.
    public func interfaceName(index: Int32) throws -> String? {
        var name: String? = nil
        do {
            try request(type: RTM_GETLINK, flags: 0, describedAs: "RTM_GETLINK index \(index)", build: { message in
                _ = Self.putHeader(message, Self.emptyLinkHeader(index: index))
            }, onReply: { reply in
                guard reply.pointee.nlmsg_type == UInt16(RTM_NEWLINK),
                      let bytes = NetlinkAttributes(reply, headerSize: MemoryLayout<ifinfomsg>.size).bytes(Int(IFLA_IFNAME))
                else { return }
                name = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            })
        } catch let error as SystemCallError where error.errno == ENODEV {
            return nil
        }
        return name
    }

    // MARK: Fib rules

    /// `ip [-6] rule list`: every rule of `family`, in the kernel's order (by priority).
    public func fibRules(family: IPFamily) throws -> [FibRule] {
        var rules: [FibRule] = []
        try request(type: RTM_GETRULE, flags: 0, dump: true,
                    describedAs: "RTM_GETRULE \(family == .ipv4 ? "ip" : "ip -6") rule list", build: { message in
            _ = Self.putHeader(message, Self.ruleHeader(family: family, table: 0, action: 0))
        }, onReply: { reply in
            guard reply.pointee.nlmsg_type == UInt16(RTM_NEWRULE),
                  let rule = Self.parseRule(reply) else { return }
            rules.append(rule)
        })
        return rules
    }

    /// `ip [-6] rule add fwmark <mark>/<mask> lookup <table> [priority N]`. Without `priority` the
    /// kernel picks one just above the first non-zero rule (32765 on a fresh namespace), as it does
    /// for `ip rule add`. The kernel only refuses an identical rule at the same priority, so callers
    /// check `fibRules` first.
    public func addFwmarkRule(family: IPFamily, mark: UInt32, mask: UInt32 = .max, table: UInt32,
                              priority: UInt32? = nil) throws {
        var text = "RTM_NEWRULE \(family == .ipv4 ? "ip" : "ip -6") rule add fwmark \(mark)"
        if mask != .max { text += "/\(mask)" }
        text += " lookup \(table)"
        if let priority { text += " priority \(priority)" }
        try request(type: RTM_NEWRULE, flags: NLM_F_CREATE | NLM_F_EXCL, describedAs: text) { message in
            _ = Self.putHeader(message, Self.ruleHeader(family: family, table: table, action: UInt8(FR_ACT_TO_TBL)))
            mnl_attr_put_u32(message, UInt16(FRA_FWMARK), mark)
            mnl_attr_put_u32(message, UInt16(FRA_FWMASK), mask)
            mnl_attr_put_u32(message, UInt16(FRA_TABLE), table)
            if let priority { mnl_attr_put_u32(message, UInt16(FRA_PRIORITY), priority) }
        }
    }

    /// `ip rule del` of one listed rule. Only for plain rules (no `otherSelectors`): the kernel deletes
    /// the first rule matching what the request names, and the request names priority, mark, mask,
    /// table and action.
    public func deleteFibRule(_ rule: FibRule) throws {
        try request(type: RTM_DELRULE, flags: 0, describedAs: "RTM_DELRULE \(rule)") { message in
            _ = Self.putHeader(message, Self.ruleHeader(family: rule.family, table: rule.table, action: rule.action))
            mnl_attr_put_u32(message, UInt16(FRA_PRIORITY), rule.priority)
            if let mark = rule.mark { mnl_attr_put_u32(message, UInt16(FRA_FWMARK), mark) }
            if let mask = rule.mask { mnl_attr_put_u32(message, UInt16(FRA_FWMASK), mask) }
            mnl_attr_put_u32(message, UInt16(FRA_TABLE), rule.table)
        }
    }

    // MARK: Routes

    /// `ip [-6] route show table <table>` (all tables with nil). Cached (cloned) routes are not listed.
    public func routes(family: IPFamily, table: UInt32? = nil) throws -> [RouteEntry] {
        var routes: [RouteEntry] = []
        try request(type: RTM_GETROUTE, flags: 0, dump: true,
                    describedAs: "RTM_GETROUTE \(family == .ipv4 ? "ip" : "ip -6") route show table \(table.map(String.init) ?? "all")",
                    build: { message in
            _ = Self.putHeader(message, rtmsg(rtm_family: Self.addressFamily(family), rtm_dst_len: 0, rtm_src_len: 0,
                                              rtm_tos: 0, rtm_table: 0, rtm_protocol: 0, rtm_scope: 0, rtm_type: 0,
                                              rtm_flags: 0))
        }, onReply: { reply in
            guard reply.pointee.nlmsg_type == UInt16(RTM_NEWROUTE), let route = Self.parseRoute(reply) else { return }
            // Older kernels ignore the table in a dump request, so filter here.
            if table == nil || route.table == table { routes.append(route) }
        })
        return routes
    }

    /// `ip route del` of one listed route.
    public func deleteRoute(_ route: RouteEntry) throws {
        try request(type: RTM_DELROUTE, flags: 0, describedAs: "RTM_DELROUTE \(route)") { message in
            // NOWHERE: "any scope", as `ip route del` asks.
            Self.putRouteMessage(message, family: route.family, destination: route.destination, table: route.table,
                                 protocol: 0, scope: UInt8(RT_SCOPE_NOWHERE.rawValue), type: route.type)
            if let gateway = route.gateway { Self.putAddress(message, type: UInt16(RTA_GATEWAY.rawValue), gateway) }
            if let index = route.outputInterfaceIndex { mnl_attr_put_u32(message, UInt16(RTA_OIF.rawValue), UInt32(index)) }
            if let priority = route.priority { mnl_attr_put_u32(message, UInt16(RTA_PRIORITY.rawValue), priority) }
        }
    }

    // MARK: Addresses

    /// `ip [-6] addr show dev <interface>`.
    public func addresses(family: IPFamily, on interface: String) throws -> [InterfaceAddressEntry] {
        try addresses(family: family, on: self.interface(named: interface))
    }

    func addresses(family: IPFamily, on interface: Interface) throws -> [InterfaceAddressEntry] {
        var addresses: [InterfaceAddressEntry] = []
        try request(type: RTM_GETADDR, flags: 0, dump: true,
                    describedAs: "RTM_GETADDR \(family == .ipv4 ? "ip" : "ip -6") addr show dev \(interface.name)",
                    build: { message in
            _ = Self.putHeader(message, ifaddrmsg(ifa_family: Self.addressFamily(family), ifa_prefixlen: 0,
                                                   ifa_flags: 0, ifa_scope: 0, ifa_index: 0))
        }, onReply: { reply in
            guard reply.pointee.nlmsg_type == UInt16(RTM_NEWADDR),
                  let address = Self.parseAddress(reply), address.interfaceIndex == interface.index else { return }
            addresses.append(address)
        })
        return addresses
    }

    /// `ip addr del <address>/<prefixLength> dev <interface>`; the prefix length must be the one the
    /// address was added with.
    public func deleteAddress(_ address: IPAddress, prefixLength: Int, from interface: String) throws {
        try deleteAddress(address, prefixLength: prefixLength, from: self.interface(named: interface))
    }

    func deleteAddress(_ address: IPAddress, prefixLength: Int, from interface: Interface) throws {
        try request(type: RTM_DELADDR, flags: 0,
                    describedAs: "RTM_DELADDR \(address)/\(prefixLength) dev \(interface.name)") { message in
            Self.putAddressMessage(message, address, prefixLength: prefixLength, interface: interface)
        }
    }

    // MARK: Parsing replies

    private static func ruleHeader(family: IPFamily, table: UInt32, action: UInt8) -> fib_rule_hdr {
        fib_rule_hdr(family: addressFamily(family), dst_len: 0, src_len: 0, tos: 0,
                     table: headerTable(table),
                     res1: 0, res2: 0, action: action, flags: 0)
    }

    static func family(_ raw: UInt8) -> IPFamily? {
        switch Int32(raw) {
        case AF_INET: .ipv4
        case AF_INET6: .ipv6
        default: nil
        }
    }

    static func parseRule(_ message: UnsafePointer<nlmsghdr>) -> FibRule? {
        let header = mnl_nlmsg_get_payload(message).assumingMemoryBound(to: fib_rule_hdr.self).pointee
        guard let family = family(header.family) else { return nil }
        let attributes = NetlinkAttributes(message, headerSize: MemoryLayout<fib_rule_hdr>.size)
        var other: [String] = []
        if header.src_len != 0 { other.append("from/\(header.src_len)") }
        if header.dst_len != 0 { other.append("to/\(header.dst_len)") }
        if header.tos != 0 { other.append("tos \(header.tos)") }
        if header.flags & UInt32(FIB_RULE_INVERT) != 0 { other.append("not") }
        // Attributes that say what the rule is or only describe it; anything else selects packets.
        let describing: Set<Int> = [Int(FRA_PRIORITY), Int(FRA_TABLE), Int(FRA_FWMARK), Int(FRA_FWMASK),
                                    Int(FRA_PROTOCOL), Int(FRA_PAD), Int(FRA_SUPPRESS_PREFIXLEN)]
        for type in attributes.types where !describing.contains(Int(type)) {
            other.append(Self.ruleAttributeNames[Int(type)] ?? "attribute \(type)")
        }
        // -1 (absent) is what the kernel reports for every rule without `suppress_prefixlength`.
        if let suppress = attributes.u32(FRA_SUPPRESS_PREFIXLEN), suppress != UInt32.max {
            other.append("suppress_prefixlength \(suppress)")
        }
        return FibRule(family: family, priority: attributes.u32(FRA_PRIORITY) ?? 0,
                       table: attributes.u32(FRA_TABLE) ?? UInt32(header.table), action: header.action,
                       mark: attributes.u32(FRA_FWMARK), mask: attributes.u32(FRA_FWMASK), otherSelectors: other)
    }

    private static let ruleAttributeNames: [Int: String] = [
        Int(FRA_DST): "to", Int(FRA_SRC): "from", Int(FRA_IIFNAME): "iif", Int(FRA_OIFNAME): "oif",
        Int(FRA_GOTO): "goto", Int(FRA_FLOW): "realms", Int(FRA_TUN_ID): "tun_id",
        Int(FRA_SUPPRESS_IFGROUP): "suppress_ifgroup", Int(FRA_L3MDEV): "l3mdev", Int(FRA_UID_RANGE): "uidrange",
        Int(FRA_IP_PROTO): "ipproto", Int(FRA_SPORT_RANGE): "sport", Int(FRA_DPORT_RANGE): "dport",
    ]

    static func parseRoute(_ message: UnsafePointer<nlmsghdr>) -> RouteEntry? {
        let header = mnl_nlmsg_get_payload(message).assumingMemoryBound(to: rtmsg.self).pointee
        guard let family = family(header.rtm_family) else { return nil }
        let attributes = NetlinkAttributes(message, headerSize: MemoryLayout<rtmsg>.size)
        var destination: CIDR? = nil
        if header.rtm_dst_len != 0 || attributes.bytes(Int(RTA_DST.rawValue)) != nil {
            guard let address = attributes.address(Int(RTA_DST.rawValue), family: family) else { return nil }
            destination = CIDR(address: address, prefixLength: Int(header.rtm_dst_len))
        }
        return RouteEntry(family: family, table: attributes.u32(Int(RTA_TABLE.rawValue)) ?? UInt32(header.rtm_table),
                          type: header.rtm_type, destination: destination,
                          gateway: attributes.address(Int(RTA_GATEWAY.rawValue), family: family),
                          outputInterfaceIndex: attributes.u32(Int(RTA_OIF.rawValue)).map { Int32(bitPattern: $0) },
                          priority: attributes.u32(Int(RTA_PRIORITY.rawValue)))
    }

    static func parseAddress(_ message: UnsafePointer<nlmsghdr>) -> InterfaceAddressEntry? {
        let header = mnl_nlmsg_get_payload(message).assumingMemoryBound(to: ifaddrmsg.self).pointee
        guard let family = family(header.ifa_family) else { return nil }
        let attributes = NetlinkAttributes(message, headerSize: MemoryLayout<ifaddrmsg>.size)
        // IFA_LOCAL is the address itself; IPv6 reports only IFA_ADDRESS unless there is a peer.
        guard let address = attributes.address(Int(IFA_LOCAL), family: family)
                ?? attributes.address(Int(IFA_ADDRESS), family: family) else { return nil }
        return InterfaceAddressEntry(address: address, prefixLength: Int(header.ifa_prefixlen),
                                     interfaceIndex: Int32(bitPattern: header.ifa_index))
    }
}

/// The top-level attributes of one rtnetlink message, copied out.
struct NetlinkAttributes {
    private(set) var types: [UInt16] = []
    private var payloads: [UInt16: [UInt8]] = [:]

    private final class Collector {
        var attributes: [(UInt16, [UInt8])] = []
    }

    init(_ message: UnsafePointer<nlmsghdr>, headerSize: Int) {
        let collector = Collector()
        _ = mnl_attr_parse(message, UInt32(headerSize), { attribute, data in
            guard let attribute, let data else { return MNL_CB_OK }
            let collector = Unmanaged<Collector>.fromOpaque(data).takeUnretainedValue()
            let length = Int(mnl_attr_get_payload_len(attribute))
            let payload = UnsafeRawBufferPointer(start: mnl_attr_get_payload(attribute), count: length)
            collector.attributes.append((mnl_attr_get_type(attribute), Array(payload)))
            return MNL_CB_OK
        }, Unmanaged.passUnretained(collector).toOpaque())
        for (type, payload) in collector.attributes {
            types.append(type)
            payloads[type] = payload
        }
    }

    func bytes(_ type: Int) -> [UInt8]? { payloads[UInt16(type)] }

    /// A host-order u32 attribute.
    func u32(_ type: Int) -> UInt32? {
        guard let bytes = bytes(type), bytes.count == 4 else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    func address(_ type: Int, family: IPFamily) -> IPAddress? {
        guard let bytes = bytes(type), bytes.count == family.addressLength else { return nil }
        return IPAddress(family: family, bytes: bytes)
    }
}
