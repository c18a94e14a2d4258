import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Why programming or reading nftables failed, worded for the person running `sluice-init`.
///
/// Every case means the kernel is unchanged: a batch is one nftables transaction, so a refusal of any
/// message rolls back all of them.
public enum KernelError: Error, CustomStringConvertible, Sendable, Hashable {
    /// One message of a batch the kernel answered with an error.
    public struct Refusal: Sendable, Hashable, CustomStringConvertible {
        /// What the message would have created or removed ("rule 3 of chain istio-output in table
        /// inet istio-proxy-nat").
        public var object: String
        /// The positive errno the kernel answered with.
        public var errno: Int32
        /// The nfnetlink message type (`NFT_MSG_NEWTABLE`, ...), which tells apart a missing nf_tables
        /// (the table cannot be created) from a refused rule.
        public var messageType: UInt16

        public init(object: String, errno: Int32, messageType: UInt16) {
            self.object = object
            self.errno = errno
            self.messageType = messageType
        }

        public var description: String { "\(object): \(KernelError.errorText(errno))" }
    }

    /// The kernel refused messages of a batch (in batch order); the batch was rolled back.
    case refused([Refusal])
    /// The process lacks CAP_NET_ADMIN in the network namespace (EPERM/EACCES).
    case permissionDenied(operation: String)
    /// The kernel has no nf_tables (or no nfnetlink at all).
    case nftablesUnavailable(operation: String, errno: Int32)
    /// A system call on the netlink socket failed.
    case systemCall(String, errno: Int32)
    /// The kernel's answer broke the netlink protocol (missing acknowledgements, truncated messages).
    case unexpectedReply(String)
    /// The ruleset cannot be expressed in netlink (a name or comment longer than the kernel allows).
    case unencodable(String)

    /// 2 for problems the user fixes in the pod spec or flags, 1 for everything the kernel refused.
    public var exitCode: Int32 {
        switch self {
        case .permissionDenied, .unencodable: return 2
        case .refused, .nftablesUnavailable, .systemCall, .unexpectedReply: return 1
        }
    }

    public var description: String {
        switch self {
        case .refused(let refusals):
            guard let first = refusals.first else { return "kernel refused the nftables batch" }
            var text = "kernel refused \(first)"
            let others = refusals.dropFirst()
            if !others.isEmpty {
                let shown = others.prefix(2).map(\.description).joined(separator: "; ")
                let hidden = others.count - min(others.count, 2)
                text += " (also refused: \(shown)\(hidden > 0 ? "; and \(hidden) more" : ""))"
            }
            return text + "; nothing was changed"
        case .permissionDenied(let operation):
            return "missing CAP_NET_ADMIN, needed to \(operation): add NET_ADMIN and NET_RAW to the init "
                + "container's securityContext.capabilities.add"
        case .nftablesUnavailable(let operation, let code):
            return "the kernel lacks nf_tables (\(operation): \(KernelError.errorText(code))): load it on the "
                + "node with `modprobe nf_tables` or use a kernel built with CONFIG_NF_TABLES"
        case .systemCall(let call, let code):
            return "\(call) failed: \(KernelError.errorText(code))"
        case .unexpectedReply(let detail):
            return "unexpected netlink reply from the kernel: \(detail)"
        case .unencodable(let detail):
            return "cannot express the ruleset in nftables netlink: \(detail)"
        }
    }

    /// The error for a netfilter request or system call that failed with `code` while doing
    /// `operation` ("program nftables", "read back the ruleset"): a missing capability and a missing
    /// nf_tables get their own cases, which tell the user what to fix; anything else names `call`
    /// (the operation when nil).
    static func from(errno code: Int32, operation: String, call: String? = nil) -> KernelError {
        switch code {
        case EPERM, EACCES: return .permissionDenied(operation: operation)
        case EOPNOTSUPP, EAFNOSUPPORT, EPROTONOSUPPORT: return .nftablesUnavailable(operation: operation, errno: code)
        default: return .systemCall(call ?? operation, errno: code)
        }
    }

    /// Sorts a failed batch's refusals into the error the user can act on: a missing capability or a
    /// missing nf_tables explain every other refusal, so they win over the list.
    static func classify(_ refusals: [Refusal], operation: String) -> KernelError {
        let denied = KernelError.permissionDenied(operation: operation)
        if refusals.contains(where: { from(errno: $0.errno, operation: operation) == denied }) { return denied }
        let batchMarkers: Set<UInt16> = [UInt16(NFNL_MSG_BATCH_BEGIN), UInt16(NFNL_MSG_BATCH_END)]
        let newTable = UInt16(NFT_MSG_NEWTABLE.rawValue)
        for refusal in refusals {
            // nfnetlink answers the batch itself with EOPNOTSUPP when no nf_tables subsystem is
            // registered (module absent and not loadable); a kernel with nf_tables but without the inet
            // family refuses the table (ENOENT: no such family). Elsewhere these codes mean a refused
            // object, not a missing subsystem.
            if batchMarkers.contains(refusal.messageType) && refusal.errno == EOPNOTSUPP
                || refusal.messageType == newTable && [EOPNOTSUPP, ENOENT, EAFNOSUPPORT].contains(refusal.errno) {
                return .nftablesUnavailable(operation: operation, errno: refusal.errno)
            }
        }
        return .refused(refusals)
    }

    /// strerror's text for an errno, for messages across the edge.
    public static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}
