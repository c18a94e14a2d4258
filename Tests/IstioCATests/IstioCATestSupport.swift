#if canImport(Glibc)
import Glibc
#endif
import Logging
import WorkloadIdentity

let quietLogger = Logger(label: "istioca-tests", factory: { _ in SwiftLogNoOpLogHandler() })

let workloadIdentity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "bookinfo")

/// A workload key and Istio's CSR for it.
func makeCSR(for identity: SpiffeIdentity = workloadIdentity) throws -> (key: WorkloadKey, csrPEM: String) {
    let key = try WorkloadKey.generate(.ecdsaP256)
    return (key, try CertificateSigningRequestBuilder.pem(for: identity, key: key))
}
