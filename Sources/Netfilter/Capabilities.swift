import CCapabilities

/// The calling thread's capabilities, read through libcap: a pre-flight check so that a missing
/// capability is reported as the pod-spec problem it is before any netlink write is attempted.
public enum ProcessCapabilities {
    public enum Capability: Sendable, CaseIterable {
        /// Programs nftables, routes and addresses.
        case netAdmin

        var value: cap_value_t {
            switch self {
            case .netAdmin: return cap_value_t(CAP_NET_ADMIN)
            }
        }
    }

    /// Whether `capability` is in the calling thread's effective set; false when libcap cannot tell.
    public static func hasEffective(_ capability: Capability) -> Bool {
        guard let capabilities = cap_get_proc() else { return false }
        defer { cap_free(UnsafeMutableRawPointer(capabilities)) }
        var flag = CAP_CLEAR
        guard cap_get_flag(capabilities, capability.value, CAP_EFFECTIVE, &flag) == 0 else { return false }
        return flag == CAP_SET
    }

    /// Throws the configuration error `sluice-init` reports without CAP_NET_ADMIN.
    public static func requireNetAdmin(to operation: String = "program nftables") throws(KernelError) {
        guard hasEffective(.netAdmin) else { throw .permissionDenied(operation: operation) }
    }
}
