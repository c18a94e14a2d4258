#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Capture
import Sockets
import TextFiles
import Netfilter

/// The system as it is: NSS for users and groups, the file system for resolv.conf, and the kernel's
/// address list of the network namespace this process is in.
public struct LiveSystemFacts: SystemFacts {
    public init() {}

    public func userID(named name: String) -> UInt32? {
        var entry = passwd()
        let found: Bool = withNSSBuffer { buffer, size in
            var result: UnsafeMutablePointer<passwd>? = nil
            let status = getpwnam_r(name, &entry, buffer, size, &result)
            return (status, result != nil)
        }
        return found ? UInt32(entry.pw_uid) : nil
    }

    public func groupID(named name: String) -> UInt32? {
        var entry = group()
        let found: Bool = withNSSBuffer { buffer, size in
            var result: UnsafeMutablePointer<group>? = nil
            let status = getgrnam_r(name, &entry, buffer, size, &result)
            return (status, result != nil)
        }
        return found ? UInt32(entry.gr_gid) : nil
    }

    /// Runs a `get*nam_r` call with a buffer that grows on ERANGE (large groups have long member
    /// lists), up to 1 MiB.
    private func withNSSBuffer(
        _ call: (UnsafeMutablePointer<CChar>, Int) -> (status: Int32, found: Bool)
    ) -> Bool {
        var size = 16 * 1024
        for _ in 0..<8 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let outcome = call(buffer, size)
            if outcome.status == ERANGE { size *= 2; continue }
            return outcome.status == 0 && outcome.found
        }
        return false
    }

    public func resolvConf(at path: String) -> String? {
        // resolv.conf is a few hundred bytes; the cap keeps a wrong path (a device, a huge file) harmless.
        try? TextFile.read(path, limit: 1 << 20)
    }

    public func interfaceAddresses() -> [IPAddress] {
        InterfaceAddress.all().map(\.address).filter { !$0.isLoopback }
    }
}
