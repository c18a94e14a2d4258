import Glibc
import TextFiles

/// The workload socket's file: created so that only the proxy user can reach it, and never stolen from
/// another SDS server (SPIRE's agent) that already serves there.
public enum WorkloadSocket {
    public enum Preparation: Sendable, Equatable {
        /// A listening socket, bound and restricted.
        case listening(descriptor: Int32)
        /// Something answers on the path already: Istio then serves only file secrets elsewhere.
        case servedByAnother
    }

    public struct SetupError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Creates the directory (0750) if missing, replaces a stale socket file, binds, restricts the
    /// socket to its owner (0600) and listens. The owner is whoever runs the agent: the proxy user.
    public static func prepare(path: String, backlog: Int32 = 4096) throws(SetupError) -> Preparation {
        guard path.utf8.count < 108 else {
            throw SetupError(description: "SDS socket path \(path) is \(path.utf8.count) bytes; Unix socket paths must be under 108: use a shorter root directory")
        }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let directory = String(path[..<slash])
            do {
                try TextFile.createDirectory(directory, mode: 0o750)
            } catch {
                throw SetupError(description: "cannot create the SDS socket directory: \(error)")
            }
        }
        if access(path, F_OK) == 0 {
            if isServed(path) { return .servedByAnother }
            // Left by an agent that did not exit cleanly: nothing listens, so it is ours to replace.
            guard unlink(path) == 0 else {
                throw SetupError(description: "cannot remove the stale SDS socket \(path): \(String(cString: strerror(errno)))")
            }
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SetupError(description: "cannot create the SDS socket: \(String(cString: strerror(errno)))") }
        var address = Self.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let error = SetupError(description: "cannot bind the SDS socket \(path): \(String(cString: strerror(errno)))")
            close(descriptor)
            throw error
        }
        // The directory (0750) already keeps others out; 0600 keeps out the proxy's own group too, and the
        // peer-credential check on every connection is the last line.
        guard chmod(path, 0o600) == 0, listen(descriptor, backlog) == 0 else {
            let error = SetupError(description: "cannot listen on the SDS socket \(path): \(String(cString: strerror(errno)))")
            close(descriptor)
            unlink(path)
            throw error
        }
        return .listening(descriptor: descriptor)
    }

    /// Whether a server accepts connections on `path` (Istio's check before it takes the path).
    public static func isServed(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = Self.address(path)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    /// The socket address of `path` (truncated to what sun_path holds; `prepare` refuses longer paths).
    public static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        return address
    }
}
