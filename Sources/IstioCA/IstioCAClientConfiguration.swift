/// How to reach Istio's CA (SDS.md §3 "CA call"). The agent resolves these from the environment.
public struct IstioCAClientConfiguration: Sendable {
    /// CA_ADDR, "host:port" ("[v6]:port" for IPv6). Port 15010 means plaintext (Istio's debug port).
    public var address: String
    /// Roots to verify the CA's certificate with (PEM, one or more). nil only for plaintext: a client
    /// given no roots speaks plaintext on any port (and logs a warning unless the port is 15010).
    public var rootCertificatesPEM: String?
    /// TLS server name: ISTIOD_SAN when set, else the host part of `address`.
    public var serverName: String?
    /// Re-read on every call and sent as "authorization: Bearer <trimmed token>"; no header when the
    /// file is missing or empty.
    public var tokenPath: String?
    /// Sent as metadata "clusterid" (gRPC metadata keys are lower case on the wire) when non-empty.
    public var clusterID: String
    /// CA_HEADER_<NAME>=value → metadata "<name lower-cased>: value".
    public var extraHeaders: [String: String]
    /// ISTIO_META_CERT_SIGNER: request metadata {"CertSigner": value} (always present, "" when unset, as Istio).
    public var certSigner: String
    /// Per attempt.
    public var callTimeout: Duration
    /// Istio's retry interceptor: 5 attempts, backoff from 100 ms doubling, ±10 % jitter, on
    /// cancelled, deadlineExceeded, resourceExhausted, aborted, internalError, unavailable.
    public var maximumAttempts: Int
    public var initialBackoff: Duration

    public init(address: String, rootCertificatesPEM: String?, serverName: String? = nil, tokenPath: String? = nil,
                clusterID: String = "", extraHeaders: [String: String] = [:], certSigner: String = "") {
        self.address = address
        self.rootCertificatesPEM = rootCertificatesPEM
        self.serverName = serverName
        self.tokenPath = tokenPath
        self.clusterID = clusterID
        self.extraHeaders = extraHeaders
        self.certSigner = certSigner
        self.callTimeout = .seconds(10)
        self.maximumAttempts = 5
        self.initialBackoff = .milliseconds(100)
    }
}
