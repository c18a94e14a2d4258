import CCapabilities
import Glibc

/// The user the agent and its data plane run as: `istio-proxy` when that user exists (VM installs
/// create it), else Istio's fixed 1337/1337, the UID the capture rules exempt.
public struct ProxyIdentity: Sendable, Hashable, CustomStringConvertible {
    public var uid: uid_t
    public var gid: gid_t

    public init(uid: uid_t, gid: gid_t) {
        self.uid = uid
        self.gid = gid
    }

    public static func lookUp(userName: String = "istio-proxy") -> ProxyIdentity {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwnam_r(userName, &entry, &buffer, buffer.count, &result) == 0, let found = result {
            return ProxyIdentity(uid: found.pointee.pw_uid, gid: found.pointee.pw_gid)
        }
        return ProxyIdentity(uid: 1337, gid: 1337)
    }

    public var description: String { "uid \(uid) gid \(gid)" }
}

public struct PrivilegeError: Error, CustomStringConvertible {
    public var description: String
}

/// Leaves the process holding no privilege it does not need before anything is served: the agent
/// parses untrusted HTTP on 15020 and supervises a data plane that parses all of the pod's traffic.
/// Must run while the process has one thread: capability sets are per thread.
public enum ProcessPrivileges {
    public enum Outcome: Sendable, Hashable {
        /// Started as root (VM mode): now the proxy user, with no capabilities.
        case switchedFromRoot(ProxyIdentity)
        /// Root kept because `--allow-root` asked for it.
        case keptRoot
        /// Started unprivileged (the pod case); any capabilities it was given are gone.
        case unprivileged
    }

    /// - Parameter proxy: the user to become when running as root; nil keeps root (`--allow-root`).
    public static func drop(switchingTo proxy: ProxyIdentity?) throws(PrivilegeError) -> Outcome {
        if geteuid() == 0 {
            guard let proxy else { return .keptRoot }
            try switchUser(to: proxy)
            try dropAllCapabilities()
            return .switchedFromRoot(proxy)
        }
        try dropAllCapabilities()
        return .unprivileged
    }

    private static func switchUser(to proxy: ProxyIdentity) throws(PrivilegeError) {
        // The bounding set can only shrink while CAP_SETPCAP is held, i.e. before the switch.
        let lastCapability = cap_max_bits() - 1
        if lastCapability >= 0 {
            for capability in 0...lastCapability { _ = cap_drop_bound(capability) }
        }
        var groups = [proxy.gid]
        guard setgroups(1, &groups) == 0 else { throw failure("setgroups", proxy) }
        guard setgid(proxy.gid) == 0 else { throw failure("setgid", proxy) }
        guard setuid(proxy.uid) == 0 else { throw failure("setuid", proxy) }
        // A setuid that left a way back (saved set-user-ID 0) would not be a drop at all.
        guard proxy.uid == 0 || setuid(0) != 0 else {
            throw PrivilegeError(description: "switching to \(proxy) left a way back to root; refusing to run as root (pass --allow-root to run as root on purpose)")
        }
    }

    private static func failure(_ call: String, _ proxy: ProxyIdentity) -> PrivilegeError {
        PrivilegeError(description: "cannot switch from root to the proxy user (\(proxy)): \(call): \(String(cString: strerror(errno))); "
            + "run pilot-agent as the proxy user, or pass --allow-root to run it as root on purpose")
    }

    private static func dropAllCapabilities() throws(PrivilegeError) {
        _ = cap_reset_ambient()
        guard let empty = cap_init() else { throw PrivilegeError(description: "cap_init: out of memory") }
        defer { cap_free(UnsafeMutableRawPointer(empty)) }
        guard cap_set_proc(empty) == 0 else {
            throw PrivilegeError(description: "cannot drop capabilities: cap_set_proc: \(String(cString: strerror(errno)))")
        }
        // Nothing the agent or the data plane runs may gain privileges back through setuid or file capabilities.
        _ = sluice_prctl_set(PR_SET_NO_NEW_PRIVS, 1)
    }

    /// Whether the calling thread holds any capability at all (for tests and the startup log).
    public static func holdsAnyCapability() -> Bool {
        guard let current = cap_get_proc() else { return true }
        defer { cap_free(UnsafeMutableRawPointer(current)) }
        guard let empty = cap_init() else { return true }
        defer { cap_free(UnsafeMutableRawPointer(empty)) }
        return cap_compare(current, empty) != 0
    }
}
