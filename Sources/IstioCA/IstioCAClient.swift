import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import SDSProtos
import SwiftProtobuf
import Synchronization
import WorkloadIdentity

/// Istio's CA client: IstioCertificateService/CreateCertificate over gRPC (HTTP/2, TLS 1.2+).
/// A fresh connection is made when a call fails, so new roots/addresses take effect (as Istio rebuilds
/// its client connection).
public final class IstioCAClient: CertificateSigner {
    private let configuration: IstioCAClientConfiguration
    private let address: CAAddress
    private let target: ServerNameTarget
    private let transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity
    private let isPlaintext: Bool
    private let callMetadata: CallMetadata
    private let retryPolicy: CARetryPolicy
    private let logger: Logger
    private let connection = Mutex<CAConnection?>(nil)

    public init(configuration: IstioCAClientConfiguration, logger: Logger) throws(IstioCAError) {
        let address = try CAAddress.parse(configuration.address)
        guard configuration.maximumAttempts >= 1 else {
            throw IstioCAError("CA client: maximumAttempts is \(configuration.maximumAttempts); it must be at least 1",
                               isRetryable: false)
        }
        guard configuration.callTimeout > .zero, configuration.initialBackoff >= .zero else {
            throw IstioCAError("CA client: callTimeout must be positive and initialBackoff not negative", isRetryable: false)
        }
        self.configuration = configuration
        self.address = address
        self.logger = logger
        self.callMetadata = try CallMetadata(tokenPath: configuration.tokenPath, clusterID: configuration.clusterID,
                                             extraHeaders: configuration.extraHeaders)
        self.retryPolicy = CARetryPolicy(maximumAttempts: configuration.maximumAttempts,
                                         initialBackoff: configuration.initialBackoff)

        let serverName = configuration.serverName.flatMap { $0.isEmpty ? nil : $0 } ?? address.host
        // Port 15010 is istiod's plaintext debug port: pilot-agent turns TLS off for it whatever the roots.
        if address.port == CAAddress.plaintextDebugPort || configuration.rootCertificatesPEM == nil {
            if address.port != CAAddress.plaintextDebugPort {
                logger.warning("no CA root certificate given: talking plaintext to the CA, the token travels in the clear",
                               metadata: ["address": "\(address)"])
            }
            self.isPlaintext = true
            self.transportSecurity = .plaintext
            self.target = ServerNameTarget(address: address, authority: nil)
        } else {
            let rootsPEM = configuration.rootCertificatesPEM ?? ""
            do {
                _ = try CertificateChain(pem: rootsPEM)
            } catch {
                throw IstioCAError("CA root certificates for \(address): \(error.description)", isRetryable: false)
            }
            // An IP address cannot be sent as SNI; left without an authority, the certificate is checked
            // against the IP address connected to (its IP SAN), as grpc-go does.
            if CAAddress.isIPLiteral(serverName) {
                guard serverName == address.host else {
                    throw IstioCAError(
                        "ISTIOD_SAN \"\(serverName)\": an IP address other than CA_ADDR's host \(address.host) cannot be checked; use a DNS name from the CA's certificate",
                        isRetryable: false)
                }
                self.target = ServerNameTarget(address: address, authority: nil)
            } else {
                guard CAAddress.isDNSName(serverName) else {
                    throw IstioCAError("ISTIOD_SAN \"\(serverName)\": not a DNS name", isRetryable: false)
                }
                self.target = ServerNameTarget(address: address, authority: serverName)
            }
            self.isPlaintext = false
            self.transportSecurity = .tls { tls in
                tls.trustRoots = .certificates([.bytes(Array(rootsPEM.utf8), format: .pem)])
                tls.serverCertificateVerification = .fullVerification
            }
        }
        // Builds the TLS context once so unusable roots are refused here rather than on every call.
        do {
            _ = try makeTransport()
        } catch {
            throw IstioCAError("CA \(address): cannot set up the connection: \(Self.describe(error))", isRetryable: false)
        }
    }

    /// Sends {csr, validity_duration: seconds, metadata {"CertSigner": …}}; returns cert_chain as given
    /// (the caller checks it with ChainCheck.checkIssued). Throws IstioCAError after the retries.
    public func sign(csrPEM: String, validity: Duration) async throws -> [String] {
        var request = Istio_V1_Auth_IstioCertificateRequest()
        request.csr = csrPEM
        request.validityDuration = validity.components.seconds
        var certSigner = Google_Protobuf_Value()
        certSigner.stringValue = configuration.certSigner
        request.metadata = Google_Protobuf_Struct(fields: ["CertSigner": certSigner])

        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            attempt += 1
            let metadata: Metadata
            do {
                metadata = try callMetadata.metadata()
            } catch {
                throw IstioCAError("CA \(address): \(error.description) (after \(Self.attempts(attempt - 1)))",
                                   isRetryable: error.isRetryable, attempts: attempt - 1)
            }
            do {
                let response = try await call(request, metadata: metadata)
                if attempt > 1 {
                    logger.info("CA call succeeded after retries", metadata: ["address": "\(address)", "attempts": "\(attempt)"])
                }
                return response.certChain
            } catch {
                try Task.checkCancellation()
                let retryable = Self.isRetryable(error)
                var reason = describeFailure(error)
                if (error as? RPCError)?.code == .unauthenticated, !metadata.contains(where: { $0.key == "authorization" }),
                   let tokenPath = configuration.tokenPath, !tokenPath.isEmpty
                {
                    reason += " (no token was sent: \(tokenPath) is missing or empty)"
                }
                // The final failure is thrown, not logged: the caller reports it with its own context.
                guard retryable, attempt < retryPolicy.maximumAttempts else {
                    throw IstioCAError("CA \(address): \(reason) (after \(Self.attempts(attempt)))",
                                       isRetryable: retryable, attempts: attempt)
                }
                let wait = retryPolicy.backoff(afterFailedAttempts: attempt, using: &generator)
                logger.warning("CA call failed; retrying", metadata: [
                    "address": "\(address)", "attempt": "\(attempt)", "backoff": "\(wait)", "error": "\(reason)",
                ])
                try await Task.sleep(for: wait)
            }
        }
    }

    /// Closes the connection, if any. Idempotent.
    public func close() async {
        let closing = connection.withLock { current in
            defer { current = nil }
            return current
        }
        await closing?.close()
    }

    // MARK: - One attempt

    private func call(_ request: Istio_V1_Auth_IstioCertificateRequest, metadata: Metadata) async throws
        -> Istio_V1_Auth_IstioCertificateResponse
    {
        let connection = try currentConnection()
        var options = CallOptions.defaults
        options.timeout = configuration.callTimeout
        // Fail fast on a connection failure (grpc-go's default), so the retry loop sees it and its error.
        options.waitForReady = false
        do {
            let client = Istio_V1_Auth_IstioCertificateService.Client(wrapping: connection.client)
            return try await client.createCertificate(request, metadata: metadata, options: options)
        } catch {
            retire(connection)
            throw error
        }
    }

    private func currentConnection() throws -> CAConnection {
        try connection.withLock { current in
            if let current { return current }
            let made = CAConnection(transport: try makeTransport(), logger: logger)
            current = made
            return made
        }
    }

    /// A failed call drops its connection (if still current) so the next attempt dials afresh; calls
    /// already running on it are let finish.
    private func retire(_ failed: CAConnection) {
        let isCurrent = connection.withLock { current in
            guard let existing = current, existing === failed else { return false }
            current = nil
            return true
        }
        if isCurrent { failed.beginClosing() }
    }

    private func makeTransport() throws -> HTTP2ClientTransport.Posix {
        try HTTP2ClientTransport.Posix(target: target, transportSecurity: transportSecurity,
                                       resolverRegistry: ServerNameResolverFactory.registry)
    }

    // MARK: - Errors

    private static func isRetryable(_ error: any Error) -> Bool {
        if let rpcError = error as? RPCError { return CARetryPolicy.isRetryable(rpcError.code) }
        // The client stopped under the call (a concurrent failure retired the connection): a new one helps.
        if error is RuntimeError { return true }
        return false
    }

    private func describeFailure(_ error: any Error) -> String {
        var text: String
        if let rpcError = error as? RPCError {
            text = "\(rpcError.code): \(rpcError.message)"
            if let cause = rpcError.cause { text += ": " + Self.describe(cause) }
        } else {
            text = Self.describe(error)
        }
        if !isPlaintext, Self.involvesTLS(error) {
            text += " — the TLS handshake with \(target.authority ?? address.host) failed: check the CA root certificate (CA_ROOT_CA, root-cert.pem) and the expected server name (ISTIOD_SAN)"
        }
        return text
    }

    /// The error and its causes, innermost last.
    static func describe(_ error: any Error) -> String {
        causes(of: error).map { current in
            if let rpcError = current as? RPCError { return "\(rpcError.code): \(rpcError.message)" }
            if let runtimeError = current as? RuntimeError { return runtimeError.message }
            return String(describing: current)
        }.joined(separator: ": ")
    }

    /// Whether a cause in the chain came from the TLS layer (swift-nio-ssl), whose types this module
    /// does not import.
    static func involvesTLS(_ error: any Error) -> Bool {
        causes(of: error).contains { String(reflecting: type(of: $0)).hasPrefix("NIOSSL.") }
    }

    /// `error`, then the causes gRPC's errors carry, outermost first (at most 8: a cycle cannot hang us).
    private static func causes(of error: any Error) -> [any Error] {
        var chain: [any Error] = []
        var next: (any Error)? = error
        while let current = next, chain.count < 8 {
            chain.append(current)
            next = (current as? RPCError)?.cause ?? (current as? RuntimeError)?.cause
        }
        return chain
    }

    private static func attempts(_ count: Int) -> String { count == 1 ? "1 attempt" : "\(count) attempts" }
}

/// One gRPC client connection to the CA and the task running it.
private final class CAConnection: Sendable {
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let running: Task<Void, Never>

    init(transport: HTTP2ClientTransport.Posix, logger: Logger) {
        let client = GRPCClient(transport: transport)
        self.client = client
        self.running = Task {
            do {
                try await client.runConnections()
            } catch {
                logger.debug("CA connection ended", metadata: ["error": "\(error)"])
            }
        }
    }

    func beginClosing() {
        client.beginGracefulShutdown()
    }

    /// Graceful, but bounded: a connection still dialing or a call still running is cut after a second.
    func close() async {
        client.beginGracefulShutdown()
        let running = self.running
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(1))
            if !Task.isCancelled { running.cancel() }
        }
        await running.value
        watchdog.cancel()
    }
}
