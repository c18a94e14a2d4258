#if canImport(Glibc)
import Glibc
#endif
import Logging
import WorkloadIdentity

/// A private directory for token files, removed with its files by `remove()`.
struct ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/istioca-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestIstioCAError("mkdtemp failed: errno \(errno)") }
        path = String(cString: made)
    }

    func write(_ name: String, _ contents: String) throws {
        let file = path + "/" + name
        let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw TestIstioCAError("open \(file): errno \(errno)") }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw TestIstioCAError("write \(file): errno \(errno)") }
    }

    func remove() {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

let quietLogger = Logger(label: "istioca-tests", factory: { _ in SwiftLogNoOpLogHandler() })

let workloadIdentity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "bookinfo")

/// A workload key and Istio's CSR for it.
func makeCSR(for identity: SpiffeIdentity = workloadIdentity) throws -> (key: WorkloadKey, csrPEM: String) {
    let key = try WorkloadKey.generate(.ecdsaP256)
    return (key, try CertificateSigningRequestBuilder.pem(for: identity, key: key))
}
