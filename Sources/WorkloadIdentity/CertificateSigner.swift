/// Something that turns a CSR into a chain: Istio's CA over gRPC (module IstioCA) or the local CA.
public protocol CertificateSigner: Sendable {
    /// PEM certificates, leaf first, root last (IstioCertificateResponse.cert_chain).
    func sign(csrPEM: String, validity: Duration) async throws -> [String]
}
