import CNetfilter
import Capture
#if canImport(Glibc)
import Glibc
#endif

/// rtnetlink (links, addresses, routes) over libmnl.
///
/// The socket is opened in the network namespace of the thread that calls `init` and stays there for
/// its whole life, whichever thread uses it later (see `NetworkNamespace.run`). Every request asks for an
/// acknowledgement, so a call returns only once the kernel has applied it or refused it.
public final class RouteNetlink {
    public enum RouteType: Sendable {
        case unicast
        /// `ip route add local ...`: deliver to this host (TPROXY's `local default dev lo table 133`).
        case local
    }

    /// An interface by name (for messages) and by the index requests name it with, in this socket's
    /// namespace: callers that address one interface several times look it up once.
    struct Interface {
        let name: String
        let index: Int32
    }

    private let socket: OpaquePointer
    private let portID: UInt32
    private var sequence: UInt32
    /// Netlink messages for a handful of attributes; replies (one link) fit in the same size.
    private static let bufferSize = 32 * 1024

    public init() throws {
        guard let socket = mnl_socket_open(NETLINK_ROUTE) else {
            throw SystemCallError(call: "mnl_socket_open(NETLINK_ROUTE)", errno: Glibc.errno)
        }
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let error = SystemCallError(call: "mnl_socket_bind(NETLINK_ROUTE)", errno: Glibc.errno)
            mnl_socket_close(socket)
            throw error
        }
        // The kernel always answers a request, but a bug on either side must not hang a test or an init
        // container forever.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                       socklen_t(MemoryLayout<timeval>.size))
        self.socket = socket
        self.portID = mnl_socket_get_portid(socket)
        self.sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { mnl_socket_close(socket) }

    // MARK: Links

    /// The interface index of `name` in this socket's namespace.
    public func interfaceIndex(named name: String) throws -> Int32 {
        var index: Int32 = 0
        try request(type: RTM_GETLINK, flags: 0, describedAs: "RTM_GETLINK dev \(name)", build: { message in
            _ = Self.putHeader(message, Self.emptyLinkHeader(index: 0))
            mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), name)
        }, onReply: { reply in
            guard reply.pointee.nlmsg_type == UInt16(RTM_NEWLINK) else { return }
            index = mnl_nlmsg_get_payload(reply).assumingMemoryBound(to: ifinfomsg.self).pointee.ifi_index
        })
        return index
    }

    func interface(named name: String) throws -> Interface {
        Interface(name: name, index: try interfaceIndex(named: name))
    }

    /// Creates a veth pair: `name` here, `peerName` in the namespace open at `peerNamespace` (a file
    /// descriptor such as `NetworkNamespace.fileDescriptor`). Both ends start down.
    public func createVethPair(_ name: String, peer peerName: String, peerNamespace: Int32) throws {
        try request(type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL,
                    describedAs: "RTM_NEWLINK \(name) type veth peer \(peerName) netns fd \(peerNamespace)") { message in
            _ = Self.putHeader(message, Self.emptyLinkHeader(index: 0))
            mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), name)
            let linkInfo = mnl_attr_nest_start(message, UInt16(IFLA_LINKINFO))
            mnl_attr_put_strz(message, UInt16(IFLA_INFO_KIND), "veth")
            let infoData = mnl_attr_nest_start(message, UInt16(IFLA_INFO_DATA))
            let peerInfo = mnl_attr_nest_start(message, UInt16(VETH_INFO_PEER))
            // VETH_INFO_PEER carries a whole link request: its own ifinfomsg, then attributes.
            _ = Self.putHeader(message, Self.emptyLinkHeader(index: 0))
            mnl_attr_put_strz(message, UInt16(IFLA_IFNAME), peerName)
            mnl_attr_put_u32(message, UInt16(IFLA_NET_NS_FD), UInt32(bitPattern: peerNamespace))
            mnl_attr_nest_end(message, peerInfo)
            mnl_attr_nest_end(message, infoData)
            mnl_attr_nest_end(message, linkInfo)
        }
    }

    public func setLinkUp(_ name: String) throws {
        let index = try interfaceIndex(named: name)
        try request(type: RTM_NEWLINK, flags: 0, describedAs: "RTM_NEWLINK \(name) up") { message in
            var header = Self.emptyLinkHeader(index: index)
            header.ifi_flags = UInt32(IFF_UP)
            header.ifi_change = UInt32(IFF_UP)
            _ = Self.putHeader(message, header)
        }
    }

    // MARK: Addresses

    /// Adds `address/prefixLength` to `interface`. IPv6 addresses skip duplicate address detection so
    /// they are usable at once (a tentative address cannot be bound or used as a source).
    public func addAddress(_ address: IPAddress, prefixLength: Int, to interface: String) throws {
        try addAddress(address, prefixLength: prefixLength, to: self.interface(named: interface))
    }

    func addAddress(_ address: IPAddress, prefixLength: Int, to interface: Interface) throws {
        try request(type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL,
                    describedAs: "RTM_NEWADDR \(address)/\(prefixLength) dev \(interface.name)") { message in
            Self.putAddressMessage(message, address, prefixLength: prefixLength, interface: interface)
            if address.family == .ipv6 {
                mnl_attr_put_u32(message, UInt16(IFA_FLAGS), UInt32(IFA_F_NODAD))
            }
        }
    }

    /// `ip addr add` that treats "already there" as success, as Istio does for `::6/128` on `lo` (the
    /// inbound passthrough source); false when the address was there.
    @discardableResult
    func addAddressUnlessPresent(_ address: IPAddress, prefixLength: Int, to interface: Interface) throws -> Bool {
        do {
            try addAddress(address, prefixLength: prefixLength, to: interface)
            return true
        } catch let error as SystemCallError where error.errno == EEXIST {
            return false
        }
    }

    /// `addAddressUnlessPresent` on a socket of its own in the calling thread's namespace.
    public static func ensureAddress(_ address: IPAddress, prefixLength: Int, on interface: String) throws {
        let netlink = try RouteNetlink()
        try netlink.addAddressUnlessPresent(address, prefixLength: prefixLength, to: netlink.interface(named: interface))
    }

    // MARK: Routes

    /// `ip route add <destination|default> [via gateway] [dev device] [table N] [type local]`.
    public func addRoute(to destination: CIDR?, family: IPFamily? = nil, via gateway: IPAddress? = nil,
                         device: String? = nil, table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue),
                         type: RouteType = .unicast) throws {
        guard let family = destination?.family ?? gateway?.family ?? family else {
            throw SystemCallError(call: "RTM_NEWROUTE default (no family: give a destination, gateway or family)",
                                    errno: EINVAL)
        }
        try addRoute(to: destination, family: family, via: gateway, device: device.map { try interface(named: $0) },
                     table: table, type: type)
    }

    func addRoute(to destination: CIDR?, family: IPFamily, via gateway: IPAddress?, device: Interface?,
                  table: UInt32, type: RouteType) throws {
        var text = "RTM_NEWROUTE \(type == .local ? "local " : "")\(destination.map(\.description) ?? "default")"
        if let gateway { text += " via \(gateway)" }
        if let device { text += " dev \(device.name)" }
        if table != UInt32(RT_TABLE_MAIN.rawValue) { text += " table \(table)" }
        try request(type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_EXCL, describedAs: text) { message in
            let scope: UInt8 = switch type {
            case .local: UInt8(RT_SCOPE_HOST.rawValue)
            case .unicast: gateway == nil ? UInt8(RT_SCOPE_LINK.rawValue) : UInt8(RT_SCOPE_UNIVERSE.rawValue)
            }
            Self.putRouteMessage(message, family: family, destination: destination, table: table,
                                 protocol: UInt8(RTPROT_BOOT), scope: scope,
                                 type: UInt8(type == .local ? RTN_LOCAL : RTN_UNICAST))
            if let gateway { Self.putAddress(message, type: UInt16(RTA_GATEWAY.rawValue), gateway) }
            if let device { mnl_attr_put_u32(message, UInt16(RTA_OIF.rawValue), UInt32(device.index)) }
        }
    }

    // MARK: The one place that talks to the kernel

    /// Sends one request with `NLM_F_REQUEST | NLM_F_ACK` and reads replies until the kernel's
    /// acknowledgement; a negative acknowledgement becomes a `SystemCallError` named `describedAs`.
    /// With `dump`, asks for every object of the kind instead (`NLM_F_DUMP`) and reads until the end
    /// of the dump (`NLMSG_DONE`), passing each object to `onReply`.
    func request(type: Int, flags: Int32, dump: Bool = false, describedAs call: String,
                 build: (UnsafeMutablePointer<nlmsghdr>) -> Void,
                 onReply: (UnsafePointer<nlmsghdr>) -> Void = { _ in }) throws {
        var buffer = [UInt8](repeating: 0, count: Self.bufferSize)
        sequence &+= 1
        let sequence = self.sequence
        try buffer.withUnsafeMutableBytes { raw in
            let message = mnl_nlmsg_put_header(raw.baseAddress)!
            message.pointee.nlmsg_type = UInt16(type)
            // A dump that started is never acknowledged; its NLMSG_DONE ends it instead.
            message.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK) | flags)
            message.pointee.nlmsg_seq = sequence
            build(message)
            let length = Int(message.pointee.nlmsg_len)
            let sent = retryingInterrupts { mnl_socket_sendto(socket, message, length) }
            guard sent == length else { throw SystemCallError(call: call, errno: sent < 0 ? Glibc.errno : EMSGSIZE) }
        }
        try withoutActuallyEscaping(onReply) { onReply in
            let context = ReplyContext(onReply)
            // One request yields at most a reply and an acknowledgement, a dump a few buffers (hundreds of
            // objects each); the bound only guards against a socket that keeps delivering messages.
            for _ in 0..<(dump ? 4096 : 64) {
                let received = buffer.withUnsafeMutableBytes { raw in
                    retryingInterrupts { mnl_socket_recvfrom(socket, raw.baseAddress, raw.count) }
                }
                guard received >= 0 else {
                    throw SystemCallError(call: call, errno: Glibc.errno == EAGAIN ? ETIMEDOUT : Glibc.errno)
                }
                let status = buffer.withUnsafeBytes { raw in
                    mnl_cb_run(raw.baseAddress, received, sequence, portID, { message, data in
                        guard let message, let data else { return MNL_CB_OK }
                        Unmanaged<ReplyContext>.fromOpaque(data).takeUnretainedValue().onReply(message)
                        return MNL_CB_OK
                    }, Unmanaged.passUnretained(context).toOpaque())
                }
                if status == MNL_CB_ERROR { throw SystemCallError(call: call, errno: Glibc.errno) }
                if status == MNL_CB_STOP { return }
            }
            throw SystemCallError(call: call, errno: ETIMEDOUT)
        }
    }

    private final class ReplyContext {
        let onReply: (UnsafePointer<nlmsghdr>) -> Void
        init(_ onReply: @escaping (UnsafePointer<nlmsghdr>) -> Void) { self.onReply = onReply }
    }

    static func putHeader<Header>(_ message: UnsafeMutablePointer<nlmsghdr>, _ header: Header) -> UnsafeMutableRawPointer {
        let space = mnl_nlmsg_put_extra_header(message, MemoryLayout<Header>.size)!
        space.storeBytes(of: header, as: Header.self)
        return space
    }

    static func putAddress(_ message: UnsafeMutablePointer<nlmsghdr>, type: UInt16, _ address: IPAddress) {
        address.bytes.withUnsafeBytes { mnl_attr_put(message, type, $0.count, $0.baseAddress) }
    }

    static func emptyLinkHeader(index: Int32) -> ifinfomsg {
        ifinfomsg(ifi_family: UInt8(AF_UNSPEC), __ifi_pad: 0, ifi_type: 0, ifi_index: index, ifi_flags: 0, ifi_change: 0)
    }

    /// The table number for a route or rule header: tables above 255 only fit in the RTA_TABLE /
    /// FRA_TABLE attribute, and the header then says RT_TABLE_UNSPEC, as iproute2 does.
    static func headerTable(_ table: UInt32) -> UInt8 {
        table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
    }

    /// The start of an RTM_NEWROUTE or RTM_DELROUTE: the header, RTA_TABLE and the destination.
    static func putRouteMessage(_ message: UnsafeMutablePointer<nlmsghdr>, family: IPFamily, destination: CIDR?,
                                table: UInt32, protocol: UInt8, scope: UInt8, type: UInt8) {
        _ = putHeader(message, rtmsg(rtm_family: addressFamily(family), rtm_dst_len: UInt8(destination?.prefixLength ?? 0),
                                     rtm_src_len: 0, rtm_tos: 0, rtm_table: headerTable(table), rtm_protocol: `protocol`,
                                     rtm_scope: scope, rtm_type: type, rtm_flags: 0))
        mnl_attr_put_u32(message, UInt16(RTA_TABLE.rawValue), table)
        if let destination { putAddress(message, type: UInt16(RTA_DST.rawValue), destination.network) }
    }

    /// The start of an RTM_NEWADDR or RTM_DELADDR: the header, then the address as both IFA_LOCAL and
    /// IFA_ADDRESS (no peer).
    static func putAddressMessage(_ message: UnsafeMutablePointer<nlmsghdr>, _ address: IPAddress, prefixLength: Int,
                                  interface: Interface) {
        _ = putHeader(message, ifaddrmsg(ifa_family: addressFamily(address.family), ifa_prefixlen: UInt8(prefixLength),
                                         ifa_flags: 0, ifa_scope: 0, ifa_index: UInt32(interface.index)))
        putAddress(message, type: UInt16(IFA_LOCAL), address)
        putAddress(message, type: UInt16(IFA_ADDRESS), address)
    }

    static func addressFamily(_ family: IPFamily) -> UInt8 {
        UInt8(family == .ipv4 ? AF_INET : AF_INET6)
    }
}
