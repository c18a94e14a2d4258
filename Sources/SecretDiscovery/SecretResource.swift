/// What a data plane may ask the agent for, by SDS resource name (SDS.md §2).
public enum SecretResource: Hashable, Sendable, CustomStringConvertible {
    /// `default`, and any name Istio does not recognise: Istio answers those with the workload
    /// certificate under the requested name, so Sluice does too.
    case workloadCertificate(name: String)
    /// `ROOTCA`: the roots that verify mesh peers.
    case rootCertificate
    /// `file-cert:<certificate>~<key>`: a chain and key from files (DestinationRule and Gateway credentials).
    case fileCertificate(name: String, certificatePath: String, keyPath: String)
    /// `file-root:<path>`: roots from a file.
    case fileRoot(name: String, path: String)
    /// `file-root:system`: the operating system's CA bundle.
    case systemRoots

    public static let defaultName = "default"
    public static let rootName = "ROOTCA"
    static let fileCertificatePrefix = "file-cert:"
    static let fileRootPrefix = "file-root:"

    /// Refuses only what cannot be served: a `file-cert:` without its `~<key>` part, or an empty path.
    public init(name: String) throws(SecretRequestError) {
        if name == Self.rootName {
            self = .rootCertificate
        } else if name.hasPrefix(Self.fileCertificatePrefix) {
            let paths = name.dropFirst(Self.fileCertificatePrefix.count).split(separator: "~", omittingEmptySubsequences: false)
            guard paths.count == 2, !paths[0].isEmpty, !paths[1].isEmpty else {
                throw SecretRequestError("resource \"\(name)\" is not file-cert:<certificate path>~<key path>")
            }
            self = .fileCertificate(name: name, certificatePath: String(paths[0]), keyPath: String(paths[1]))
        } else if name.hasPrefix(Self.fileRootPrefix) {
            let path = String(name.dropFirst(Self.fileRootPrefix.count))
            guard !path.isEmpty else { throw SecretRequestError("resource \"\(name)\" names no file: want file-root:<path> or file-root:system") }
            self = path == "system" ? .systemRoots : .fileRoot(name: name, path: path)
        } else {
            self = .workloadCertificate(name: name)
        }
    }

    /// The name the data plane used, which the answer must carry.
    public var name: String {
        switch self {
        case .workloadCertificate(let name): name
        case .rootCertificate: Self.rootName
        case .fileCertificate(let name, _, _): name
        case .fileRoot(let name, _): name
        case .systemRoots: Self.fileRootPrefix + "system"
        }
    }

    public var description: String { name }

    /// Served from files named in the resource itself.
    public var isFileBacked: Bool {
        switch self {
        case .fileCertificate, .fileRoot, .systemRoots: true
        case .workloadCertificate, .rootCertificate: false
        }
    }

    /// Where Linux distributions keep their CA bundle, in Go's `GetOSRootFilePath` order.
    public static let systemBundleCandidates = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/tls/cacert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
}

/// A request the server cannot answer, worded for the data plane's log and the agent's.
public struct SecretRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
