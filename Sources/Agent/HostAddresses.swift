import Capture
import Sockets

/// The pod's own addresses as Istio's `GetPrivateIPs` collects them: interfaces that are up,
/// without loopback and link-local addresses. They follow INSTANCE_IP in the node's IP list and
/// decide whether the pod is IPv4, IPv6 or dual-stack.
enum HostAddresses {
    static func collect() -> [String] {
        InterfaceAddress.all()
            .filter { $0.isUp && !$0.isLoopbackInterface && !$0.address.isLinkLocal }
            .map(\.address.description)
    }
}
