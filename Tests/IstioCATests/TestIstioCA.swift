// A stand-in for istiod's CA (istio.v1.auth.IstioCertificateService/CreateCertificate) for tests.
// Self-contained on purpose: SecretDiscoveryTests compiles this same file through a symlink, so it
// depends on no other test file and declares nothing public.

import Crypto
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import SDSProtos
import SwiftASN1
import Synchronization
import WorkloadIdentity
import X509

/// Serves CreateCertificate on 127.0.0.1 (port 0), over TLS with a server certificate for
/// "istiod.istio-system.svc" and IP 127.0.0.1 issued by its own test root, or in plaintext. Checks the
/// bearer token and the cluster id like istiod (unauthenticated otherwise), issues workload
/// certificates with a `LocalCertificateAuthority`, records every request, and can be scripted to fail.
final class TestIstioCA: Sendable {
    /// The DNS name in the server certificate (istiod's service name).
    static let serverName = "istiod.istio-system.svc"

    /// What the server saw on one call.
    struct SeenRequest: Sendable {
        var csrPEM: String
        var validitySeconds: Int64
        /// The request's metadata struct as strings (string values only; others described).
        var requestMetadata: [String: String]
        /// Every header the client sent, lower-cased names; values in order.
        var headers: [String: [String]]
        var receivedAt: ContinuousClock.Instant

        var authorization: String? { headers["authorization"]?.first }
        var clusterID: String? { headers["clusterid"]?.first }
        var certSigner: String? { requestMetadata["CertSigner"] }
    }

    /// How the next successful-looking calls are answered.
    enum Answer: Sendable, Equatable {
        /// The chain the local CA issues for the CSR: [leaf, root].
        case issue
        /// A correctly signed chain whose leaf is for another identity (and another key).
        case otherIdentity(SpiffeIdentity)
        /// Only the leaf: what Istio refuses as "invalid empty CertChain".
        case oneElementChain
    }

    private struct State: Sendable {
        var expectedToken: String?
        var expectedClusterID: String?
        var failuresRemaining = 0
        var failureCode: RPCError.Code = .unavailable
        var answer: Answer = .issue
        var requests: [SeenRequest] = []
    }

    /// Shared with the service, which runs on the server's tasks.
    private final class SharedState: Sendable {
        let mutex: Mutex<State>
        init(_ state: State) { mutex = Mutex(state) }
        func withLock<Result: Sendable>(_ body: (inout State) -> Result) -> Result { mutex.withLock { body(&$0) } }
    }

    private let state: SharedState
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving: Task<Void, Never>

    /// The workload CA issuing the answers (its root is the last element of every chain).
    let workloadAuthority: LocalCertificateAuthority
    /// The root the server's TLS certificate chains to: what a client must trust. nil in plaintext.
    let tlsRootCertificatePEM: String?
    let port: Int
    var address: String { "127.0.0.1:\(port)" }

    /// - Parameters:
    ///   - expectedToken: the bearer token required; nil accepts any call (with or without a token).
    ///   - expectedClusterID: the "clusterid" header required; nil does not check.
    ///   - tls: false serves plaintext (istiod's :15010 debug port).
    ///   - ipAddressSAN: whether the server certificate also names 127.0.0.1. swift-nio-ssl accepts a
    ///     certificate naming the connected IP whatever server name was asked for, so a test of the
    ///     server-name check needs a certificate with the DNS name only.
    static func start(expectedToken: String? = "test-token", expectedClusterID: String? = "Kubernetes",
                      trustDomain: String = "cluster.local", tls: Bool = true,
                      ipAddressSAN: Bool = true) async throws -> TestIstioCA {
        let authority = try LocalCertificateAuthority.create(trustDomain: trustDomain)
        let security: HTTP2ServerTransport.Posix.TransportSecurity
        let rootPEM: String?
        if tls {
            let credentials = try await TestTLSCredentials.make(dnsName: serverName, ipv4: ipAddressSAN ? [127, 0, 0, 1] : nil)
            security = .tls(certificateChain: [.bytes(Array(credentials.serverCertificatePEM.utf8), format: .pem)],
                            privateKey: .bytes(Array(credentials.serverKeyPEM.utf8), format: .pem))
            rootPEM = credentials.rootCertificatePEM
        } else {
            security = .plaintext
            rootPEM = nil
        }
        let state = SharedState(State(expectedToken: expectedToken, expectedClusterID: expectedClusterID))
        let service = CertificateService(state: state, authority: authority)
        let server = GRPCServer(
            transport: HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: security),
            services: [service])
        let serving = Task {
            _ = try? await server.serve()
        }
        guard let port = try await server.listeningAddress?.ipv4?.port else {
            server.beginGracefulShutdown()
            serving.cancel()
            throw TestIstioCAError("the test CA did not report a listening IPv4 address")
        }
        return TestIstioCA(state: state, server: server, serving: serving, workloadAuthority: authority,
                           tlsRootCertificatePEM: rootPEM, port: port)
    }

    private init(state: SharedState, server: GRPCServer<HTTP2ServerTransport.Posix>, serving: Task<Void, Never>,
                 workloadAuthority: LocalCertificateAuthority, tlsRootCertificatePEM: String?, port: Int) {
        self.state = state
        self.server = server
        self.serving = serving
        self.workloadAuthority = workloadAuthority
        self.tlsRootCertificatePEM = tlsRootCertificatePEM
        self.port = port
    }

    /// The next `count` calls fail with `code` (after the header checks pass).
    func failNext(_ count: Int, with code: RPCError.Code = .unavailable) {
        state.withLock {
            $0.failuresRemaining = count
            $0.failureCode = code
        }
    }

    func answer(with answer: Answer) {
        state.withLock { $0.answer = answer }
    }

    func expect(token: String?) {
        state.withLock { $0.expectedToken = token }
    }

    var requests: [SeenRequest] { state.withLock { $0.requests } }

    func stop() async {
        server.beginGracefulShutdown()
        let serving = self.serving
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(2))
            if !Task.isCancelled { serving.cancel() }
        }
        await serving.value
        watchdog.cancel()
    }

    private struct CertificateService: Istio_V1_Auth_IstioCertificateService.ServiceProtocol {
        let state: SharedState
        let authority: LocalCertificateAuthority

        func createCertificate(request: ServerRequest<Istio_V1_Auth_IstioCertificateRequest>, context: ServerContext)
            async throws -> ServerResponse<Istio_V1_Auth_IstioCertificateResponse>
        {
            var headers: [String: [String]] = [:]
            for (key, value) in request.metadata {
                if case .string(let text) = value { headers[key.lowercased(), default: []].append(text) }
            }
            var requestMetadata: [String: String] = [:]
            for (key, value) in request.message.metadata.fields {
                if case .stringValue(let text)? = value.kind {
                    requestMetadata[key] = text
                } else {
                    requestMetadata[key] = "\(value)"
                }
            }
            let seen = SeenRequest(csrPEM: request.message.csr, validitySeconds: request.message.validityDuration,
                                   requestMetadata: requestMetadata, headers: headers, receivedAt: .now)
            enum Verdict { case refuse(RPCError), answer(Answer) }
            let verdict: Verdict = state.withLock { state in
                state.requests.append(seen)
                if let token = state.expectedToken, seen.authorization != "Bearer \(token)" {
                    return .refuse(RPCError(code: .unauthenticated, message: "request authenticate failure"))
                }
                if let clusterID = state.expectedClusterID, seen.clusterID != clusterID {
                    return .refuse(RPCError(code: .unauthenticated,
                                            message: "client claims to be in cluster \"\(seen.clusterID ?? "")\""))
                }
                if state.failuresRemaining > 0 {
                    state.failuresRemaining -= 1
                    return .refuse(RPCError(code: state.failureCode, message: "scripted failure"))
                }
                return .answer(state.answer)
            }
            let validity = Duration.seconds(seen.validitySeconds > 0 ? seen.validitySeconds : 86400)
            var response = Istio_V1_Auth_IstioCertificateResponse()
            switch verdict {
            case .refuse(let error):
                throw error
            case .answer(.issue):
                response.certChain = try await sign(seen.csrPEM, validity: validity)
            case .answer(.oneElementChain):
                response.certChain = Array(try await sign(seen.csrPEM, validity: validity).prefix(1))
            case .answer(.otherIdentity(let identity)):
                let key = try WorkloadKey.generate(.ecdsaP256)
                let csr = try CertificateSigningRequestBuilder.pem(for: identity, key: key)
                response.certChain = try await sign(csr, validity: validity)
            }
            return ServerResponse(message: response)
        }

        private func sign(_ csrPEM: String, validity: Duration) async throws -> [String] {
            do {
                return try await authority.sign(csrPEM: csrPEM, validity: validity)
            } catch {
                throw RPCError(code: .invalidArgument, message: "cannot sign the CSR: \(error)")
            }
        }
    }
}

struct TestIstioCAError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A test root and a server certificate it issues (ECDSA P-256), as PEM.
struct TestTLSCredentials: Sendable {
    var rootCertificatePEM: String
    var serverCertificatePEM: String
    var serverKeyPEM: String

    /// A self-signed root on its own: a trust anchor that signs nothing the server uses.
    static func unrelatedRootPEM() throws -> String {
        let key = P256.Signing.PrivateKey()
        return try makeRoot(key: key, name: "Unrelated test root").serializeAsPEM().pemString + "\n"
    }

    static func make(dnsName: String, ipv4: [UInt8]?) async throws -> TestTLSCredentials {
        let rootKey = P256.Signing.PrivateKey()
        let root = try makeRoot(key: rootKey, name: "Test CA server root")
        let serverKey = P256.Signing.PrivateKey()
        let now = Date()
        let server = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(serverKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86400,
            issuer: root.subject,
            subject: try DistinguishedName { CommonName("istiod") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName(dnsName)] + (ipv4.map { [.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0)))] } ?? []))
            },
            issuerPrivateKey: Certificate.PrivateKey(rootKey))
        return TestTLSCredentials(rootCertificatePEM: try root.serializeAsPEM().pemString + "\n",
                                  serverCertificatePEM: try server.serializeAsPEM().pemString + "\n",
                                  serverKeyPEM: serverKey.pemRepresentation + "\n")
    }

    private static func makeRoot(key: P256.Signing.PrivateKey, name: String) throws -> Certificate {
        let subject = try DistinguishedName {
            OrganizationName("Sluice tests")
            CommonName(name)
        }
        let now = Date()
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 10 * 86400,
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
    }
}
