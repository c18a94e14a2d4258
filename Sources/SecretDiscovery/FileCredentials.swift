import Glibc
import TextFiles
import WorkloadIdentity

/// A set of files one resource is served from, loaded and checked together.
enum FileSet: Hashable, Sendable, CustomStringConvertible {
    /// A chain and its key (`file-cert:`, `./etc/certs`).
    case certificate(chain: String, key: String)
    /// PEM roots (`file-root:`, `ROOTCA` from `./etc/certs/root-cert.pem`).
    case roots(String)
    /// A chain, its key and the roots (workload-spiffe-credentials / FILE_MOUNTED_CERTS).
    case credentials(SecretStoreConfiguration.CredentialFiles)

    var paths: [String] {
        switch self {
        case .certificate(let chain, let key): [chain, key]
        case .roots(let path): [path]
        case .credentials(let files): [files.certificateChain, files.key, files.roots]
        }
    }

    var description: String { paths.joined(separator: ", ") }
}

/// What a file set held when it was last loaded and found good.
enum LoadedFiles: Sendable {
    case certificate(CertifiedKey)
    case roots(String)
    case credentials(CertifiedKey, roots: String)

    var certificate: CertifiedKey? {
        switch self {
        case .certificate(let certified), .credentials(let certified, _): certified
        case .roots: nil
        }
    }

    var roots: String? {
        switch self {
        case .roots(let pem), .credentials(_, let pem): pem
        case .certificate: nil
        }
    }
}

extension FileSignature {
    static func of(_ set: FileSet) -> [FileSignature?] { set.paths.map { FileSignature(path: $0) } }
}

enum FileCredentials {
    /// Reads and checks a file set the way Go's tls.LoadX509KeyPair and Istio's file checks do: the chain
    /// parses, the key matches its leaf, the leaf is current; roots parse as certificates.
    static func load(_ set: FileSet, at now: WallClockTime) throws(SecretRequestError) -> LoadedFiles {
        switch set {
        case .certificate(let chainPath, let keyPath):
            return .certificate(try certifiedKey(chainPath: chainPath, keyPath: keyPath, at: now))
        case .roots(let path):
            return .roots(try roots(path))
        case .credentials(let files):
            let certified = try certifiedKey(chainPath: files.certificateChain, keyPath: files.key, at: now)
            return .credentials(certified, roots: try roots(files.roots))
        }
    }

    private static func certifiedKey(chainPath: String, keyPath: String, at now: WallClockTime) throws(SecretRequestError) -> CertifiedKey {
        let chainText = try read(chainPath, "certificate chain")
        let keyText = try read(keyPath, "private key")
        do {
            let chain = try CertificateChain(pem: chainText)
            try ChainCheck.checkCurrent(chain, at: now)
            return try CertifiedKey(chain: chain, keyPEM: keyText)
        } catch {
            throw SecretRequestError("\(chainPath) with key \(keyPath): \(error)")
        }
    }

    /// Roots are served as the file has them (a system bundle carries comments between certificates), once
    /// at least one certificate in it parses.
    private static func roots(_ path: String) throws(SecretRequestError) -> String {
        let text = try read(path, "roots")
        let blocks = PEMBlocks.certificates(in: text)
        guard !blocks.isEmpty else { throw SecretRequestError("\(path): no PEM certificate in the file; want the CA's root certificate(s)") }
        do {
            _ = try CertificateChain(pems: blocks)
        } catch {
            throw SecretRequestError("\(path): \(error)")
        }
        return text
    }

    private static func read(_ path: String, _ what: String) throws(SecretRequestError) -> String {
        let text: String
        do {
            text = try TextFile.read(path, limit: 4 << 20)
        } catch {
            throw SecretRequestError("cannot read the \(what): \(error)")
        }
        guard !text.isEmpty else { throw SecretRequestError("\(path): the \(what) file is empty") }
        return text
    }
}

/// The certificate blocks of a PEM bundle, each as its own PEM text, ignoring anything between them.
enum PEMBlocks {
    static let begin = "-----BEGIN CERTIFICATE-----"
    static let end = "-----END CERTIFICATE-----"

    static func certificates(in text: String) -> [String] {
        var blocks: [String] = []
        var remaining = Substring(text)
        while let start = remaining.firstRange(of: begin), let stop = remaining[start.upperBound...].firstRange(of: end) {
            blocks.append(String(remaining[start.lowerBound..<stop.upperBound]) + "\n")
            remaining = remaining[stop.upperBound...]
        }
        return blocks
    }
}
