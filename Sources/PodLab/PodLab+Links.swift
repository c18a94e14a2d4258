import Capture
import Netfilter

extension PodLab {
    /// One more veth pair between pod and peer, named in the pod as a ruleset names it (`eth1`,
    /// `not-istio-nic`): rules that match interfaces (`-c`, `-k`) then see real traffic cross them.
    ///
    /// Link number `k` gets two small subnets per family on both ends, one inside and one outside the
    /// ranges the conformance suite maps Istio's CIDRs to, so "to a destination in / not in the CIDR via
    /// this interface" can both be probed:
    ///
    /// ```
    ///  pod <name>                              peer link<k>
    ///  198.51.100.(66+8k)/29   2001:db8:2:0:k::2/80   <-->  198.51.100.(65+8k)/29   2001:db8:2:0:k::1/80
    ///  203.0.113.(66+8k)/29    2001:db8:1k::2/64             203.0.113.(65+8k)/29    2001:db8:1k::1/64
    /// ```
    /// The /29s and the /80 are longer than the /24 and /64 the pod routes through `eth0`, so traffic to
    /// them takes the link on both sides.
    public struct Link: Sendable, Hashable {
        public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
            public var address: IPAddress
            public var prefixLength: Int

            public var description: String { "\(address)/\(prefixLength)" }
        }

        /// The pod-side name.
        public var name: String
        public var peerName: String
        public var podAddresses: [InterfaceAddress]
        public var peerAddresses: [InterfaceAddress]

        /// Link `number` (1-23) of a lab, called `name` in the pod.
        public init(_ name: String, number: Int) {
            precondition((1...23).contains(number), "link numbers 1-23 keep the /29s inside their /24")
            self.name = name
            peerName = "link\(number)"
            func addresses(host: Int) -> [InterfaceAddress] {
                [
                    InterfaceAddress(address: IPAddress("198.51.100.\(64 + 8 * number + host)")!, prefixLength: 29),
                    InterfaceAddress(address: IPAddress("203.0.113.\(64 + 8 * number + host)")!, prefixLength: 29),
                    InterfaceAddress(address: IPAddress("2001:db8:2:0:\(number)::\(host)")!, prefixLength: 80),
                    InterfaceAddress(address: IPAddress("2001:db8:\(10 + number)::\(host)")!, prefixLength: 64),
                ]
            }
            podAddresses = addresses(host: 2)
            peerAddresses = addresses(host: 1)
        }

        public func podAddresses(_ family: IPFamily) -> [IPAddress] {
            podAddresses.map(\.address).filter { $0.family == family }
        }

        public func peerAddresses(_ family: IPFamily) -> [IPAddress] {
            peerAddresses.map(\.address).filter { $0.family == family }
        }

        func wire(pod: NetworkNamespace, peer: NetworkNamespace) throws {
            // As for eth0: both ends up before addresses.
            try pod.run {
                let netlink = try RouteNetlink()
                try netlink.createVethPair(name, peer: peerName, peerNamespace: peer.fileDescriptor)
                try netlink.setLinkUp(name)
            }
            try peer.run {
                let netlink = try RouteNetlink()
                try netlink.setLinkUp(peerName)
                for entry in peerAddresses { try netlink.addAddress(entry.address, prefixLength: entry.prefixLength, to: peerName) }
            }
            try pod.run {
                let netlink = try RouteNetlink()
                for entry in podAddresses { try netlink.addAddress(entry.address, prefixLength: entry.prefixLength, to: name) }
            }
        }
    }
}
