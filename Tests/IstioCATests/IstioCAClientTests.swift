import GRPCCore
import PodLab
import Testing
import WorkloadIdentity

@testable import IstioCA

/// A real IstioCAClient against TestIstioCA over TLS (or plaintext) on loopback.
@Suite struct IstioCAClientTests {
    /// A configuration for `server` with the token file `token` in `directory` (when given), ISTIOD_SAN
    /// set to the server certificate's DNS name, and backoff shortened so retry tests stay fast.
    func configuration(for server: TestIstioCA, directory: TemporaryDirectory?, serverName: String? = TestIstioCA.serverName)
        -> IstioCAClientConfiguration
    {
        var configuration = IstioCAClientConfiguration(
            address: server.address, rootCertificatesPEM: server.tlsRootCertificatePEM, serverName: serverName,
            tokenPath: directory.map { $0.path + "/istio-token" }, clusterID: "Kubernetes")
        configuration.initialBackoff = .milliseconds(10)
        configuration.callTimeout = .seconds(5)
        return configuration
    }

    /// One `sign` call that must fail, with `configuration` against `server`; the client is closed and
    /// the server stopped before the error is returned.
    func failingSign(_ configuration: IstioCAClientConfiguration, against server: TestIstioCA,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> IstioCAError? {
        let client = try IstioCAClient(configuration: configuration, logger: quietLogger)
        let error = await #expect(throws: IstioCAError.self, sourceLocation: sourceLocation) {
            _ = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        }
        await client.close()
        await server.stop()
        return error
    }

    @Test func signsOverTLSWithTokenClusterIDHeadersAndCertSigner() async throws {
        let server = try await TestIstioCA.start(expectedToken: "token-1", expectedClusterID: "Kubernetes")
        let directory = try TemporaryDirectory(prefix: "istioca-test")
        defer { directory.remove() }
        try directory.write("istio-token", "  token-1\n")
        var configuration = configuration(for: server, directory: directory)
        configuration.extraHeaders = ["X-Tenant": "blue", "routing": "east"]
        configuration.certSigner = "istio-system-signer"
        let client = try IstioCAClient(configuration: configuration, logger: quietLogger)
        let (key, csr) = try makeCSR()

        let pems = try await client.sign(csrPEM: csr, validity: .seconds(3600))
        await client.close()
        await server.stop()

        #expect(pems.count == 2)
        #expect(pems.last == server.workloadAuthority.rootCertificatePEM)
        let chain = try CertificateChain(pems: pems)
        try await ChainCheck.checkIssued(chain, for: workloadIdentity, key: key, at: .now())
        let seen = try #require(server.requests.first)
        #expect(server.requests.count == 1)
        #expect(seen.authorization == "Bearer token-1")
        #expect(seen.clusterID == "Kubernetes")
        #expect(seen.headers["x-tenant"] == ["blue"])
        #expect(seen.headers["routing"] == ["east"])
        #expect(seen.certSigner == "istio-system-signer")
        #expect(seen.requestMetadata.count == 1)
        #expect(seen.validitySeconds == 3600)
        #expect(seen.csrPEM == csr)
    }

    @Test func certSignerIsSentEmptyWhenUnset() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        var configuration = configuration(for: server, directory: nil)
        configuration.clusterID = ""
        let client = try IstioCAClient(configuration: configuration, logger: quietLogger)
        _ = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        await client.close()
        await server.stop()

        let seen = try #require(server.requests.first)
        #expect(seen.certSigner == "")
        #expect(seen.authorization == nil)
        #expect(seen.clusterID == nil)
    }

    @Test func theServerNameIsCheckedAgainstTheCertificatesDNSName() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil, ipAddressSAN: false)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)
        let pems = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        await client.close()
        await server.stop()
        #expect(pems.count == 2)
        #expect(server.requests.first?.headers[":authority"] == [TestIstioCA.serverName])
    }

    @Test func anIPAddressWithoutServerNameIsVerifiedAgainstTheIPSAN() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil, serverName: nil),
                                       logger: quietLogger)
        let pems = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        await client.close()
        await server.stop()
        #expect(pems.count == 2)
    }

    @Test func anIPAddressNotInTheCertificateIsATLSError() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil, ipAddressSAN: false)
        var configuration = configuration(for: server, directory: nil, serverName: nil)
        configuration.maximumAttempts = 1
        let error = try await failingSign(configuration, against: server)

        #expect(server.requests.isEmpty)
        #expect(error?.description.contains("TLS handshake with 127.0.0.1") == true, "\(error?.description ?? "")")
    }

    @Test func theTokenFileIsReadAgainOnEveryCall() async throws {
        let server = try await TestIstioCA.start(expectedToken: "first", expectedClusterID: "Kubernetes")
        let directory = try TemporaryDirectory(prefix: "istioca-test")
        defer { directory.remove() }
        try directory.write("istio-token", "first")
        let client = try IstioCAClient(configuration: configuration(for: server, directory: directory), logger: quietLogger)
        let csr = try makeCSR().csrPEM

        _ = try await client.sign(csrPEM: csr, validity: .seconds(600))
        try directory.write("istio-token", "second\n")
        server.expect(token: "second")
        _ = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await server.stop()

        #expect(server.requests.map(\.authorization) == ["Bearer first", "Bearer second"])
    }

    @Test(arguments: [false, true])
    func aMissingOrEmptyTokenSendsNoAuthorizationAndTheServerRefuses(emptyFile: Bool) async throws {
        let server = try await TestIstioCA.start(expectedToken: "needed", expectedClusterID: "Kubernetes")
        let directory = try TemporaryDirectory(prefix: "istioca-test")
        defer { directory.remove() }
        if emptyFile { try directory.write("istio-token", " \n") }
        let error = try await failingSign(configuration(for: server, directory: directory), against: server)

        #expect(server.requests.count == 1)
        #expect(server.requests.first?.authorization == nil)
        #expect(server.requests.first?.headers["authorization"] == nil)
        #expect(error?.isRetryable == false)
        #expect(error?.attempts == 1)
        #expect(error?.description.contains("unauthenticated") == true)
        #expect(error?.description.contains("request authenticate failure") == true)
        #expect(error?.description.contains(server.address) == true)
        #expect(error?.description.hasSuffix("(after 1 attempt)") == true)
        #expect(error?.description.contains("no token was sent: \(directory.path)/istio-token is missing or empty") == true,
                "\(error?.description ?? "")")
    }

    @Test func aWrongRootIsATLSErrorNamedInTheError() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        var configuration = configuration(for: server, directory: nil)
        configuration.rootCertificatesPEM = try TestTLSCredentials.unrelatedRootPEM()
        configuration.maximumAttempts = 2
        let error = try await failingSign(configuration, against: server)

        #expect(server.requests.isEmpty)
        let description = error?.description ?? ""
        #expect(description.contains("TLS handshake"), "\(description)")
        #expect(description.contains("CA_ROOT_CA"), "\(description)")
        #expect(description.contains("unavailable"), "\(description)")
        #expect(error?.attempts == 2)
    }

    @Test func aServerNameNotInTheCertificateIsATLSError() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil, ipAddressSAN: false)
        var configuration = configuration(for: server, directory: nil, serverName: "istiod.other.svc")
        configuration.maximumAttempts = 1
        let error = try await failingSign(configuration, against: server)

        #expect(server.requests.isEmpty)
        #expect(error?.description.contains("TLS handshake with istiod.other.svc") == true, "\(error?.description ?? "")")
    }

    @Test func unavailableAnswersAreRetriedUntilSuccess() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        server.failNext(3)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)

        let pems = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        await client.close()
        await server.stop()

        #expect(pems.count == 2)
        #expect(server.requests.count == 4)
    }

    @Test func moreFailuresThanAttemptsFailAfterFiveAttemptsWithBackoff() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        server.failNext(100, with: .resourceExhausted)
        var configuration = configuration(for: server, directory: nil)
        configuration.initialBackoff = .milliseconds(20)
        let error = try await failingSign(configuration, against: server)

        #expect(error?.attempts == 5)
        #expect(error?.isRetryable == true)
        #expect(error?.description.hasSuffix("(after 5 attempts)") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("resourceExhausted") == true, "\(error?.description ?? "")")
        let arrivals = server.requests.map(\.receivedAt)
        #expect(arrivals.count == 5)
        // Waits of 20, 40, 80, 160 ms, each within ±10 %: every gap at least 90 % of its backoff.
        for index in arrivals.indices.dropFirst() {
            let expected = Duration.milliseconds(20) * (1 << (index - 1))
            let gap = arrivals[index] - arrivals[index - 1]
            #expect(gap >= expected * 0.9, "gap \(index): \(gap), expected about \(expected)")
        }
    }

    @Test(arguments: [RPCError.Code.unauthenticated, .permissionDenied, .invalidArgument])
    func nonRetryableCodesAreNotRetried(code: RPCError.Code) async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        server.failNext(3, with: code)
        let error = try await failingSign(configuration(for: server, directory: nil), against: server)

        #expect(server.requests.count == 1)
        #expect(error?.attempts == 1)
        #expect(error?.isRetryable == false)
        #expect(error?.description.contains("scripted failure") == true)
    }

    @Test func plaintextToAPlaintextServer() async throws {
        let server = try await TestIstioCA.start(expectedToken: "debug", expectedClusterID: "Kubernetes", tls: false)
        let directory = try TemporaryDirectory(prefix: "istioca-test")
        defer { directory.remove() }
        try directory.write("istio-token", "debug")
        let client = try IstioCAClient(configuration: configuration(for: server, directory: directory, serverName: nil),
                                       logger: quietLogger)
        let (key, csr) = try makeCSR()

        let pems = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await server.stop()

        try await ChainCheck.checkIssued(try CertificateChain(pems: pems), for: workloadIdentity, key: key, at: .now())
        #expect(server.requests.first?.authorization == "Bearer debug")
    }

    @Test func aTLSClientDoesNotTalkToAPlaintextServer() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil, tls: false)
        let credentials = try await TestTLSCredentials.make(dnsName: TestIstioCA.serverName, ipv4: nil)
        var configuration = configuration(for: server, directory: nil)
        configuration.rootCertificatesPEM = credentials.rootCertificatePEM
        configuration.maximumAttempts = 1
        _ = try await failingSign(configuration, against: server)
        #expect(server.requests.isEmpty)
    }

    @Test func aChainForAnotherIdentityIsReturnedAsGivenAndFailsTheChainCheck() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        let other = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "intruder")
        server.answer(with: .otherIdentity(other))
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)
        let (key, csr) = try makeCSR()

        let pems = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await server.stop()

        let chain = try CertificateChain(pems: pems)
        #expect(chain.leafURIs == [other.uri])
        await #expect(throws: WorkloadIdentityError.self) {
            try await ChainCheck.checkIssued(chain, for: workloadIdentity, key: key, at: .now())
        }
    }

    @Test func aOneElementChainIsReturnedAsGivenAndFailsTheChainCheck() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        server.answer(with: .oneElementChain)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)
        let (key, csr) = try makeCSR()

        let pems = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await server.stop()

        #expect(pems.count == 1)
        await #expect(throws: WorkloadIdentityError.self) {
            try await ChainCheck.checkIssued(try CertificateChain(pems: pems), for: workloadIdentity, key: key, at: .now())
        }
    }

    @Test func closeIsIdempotentAndTheClientReconnectsAfterwards() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)
        let csr = try makeCSR().csrPEM
        await client.close()
        _ = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await client.close()
        _ = try await client.sign(csrPEM: csr, validity: .seconds(600))
        await client.close()
        await server.stop()
        #expect(server.requests.count == 2)
    }

    @Test func concurrentCallsShareTheClient() async throws {
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        server.failNext(2)
        let client = try IstioCAClient(configuration: configuration(for: server, directory: nil), logger: quietLogger)
        let csr = try makeCSR().csrPEM
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { try await client.sign(csrPEM: csr, validity: .seconds(600)).count }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        await client.close()
        await server.stop()
        #expect(counts == Array(repeating: 2, count: 8))
        #expect(server.requests.count == 10)
    }

    @Test func aClosedPortIsUnavailableAndRetried() async throws {
        // A server started and stopped leaves a loopback port nobody listens on.
        let server = try await TestIstioCA.start(expectedToken: nil, expectedClusterID: nil)
        let configuration = configuration(for: server, directory: nil)
        await server.stop()
        var quick = configuration
        quick.maximumAttempts = 3
        let client = try IstioCAClient(configuration: quick, logger: quietLogger)

        let error = await #expect(throws: IstioCAError.self) {
            _ = try await client.sign(csrPEM: try makeCSR().csrPEM, validity: .seconds(600))
        }
        await client.close()
        #expect(error?.attempts == 3)
        #expect(error?.isRetryable == true)
        #expect(error?.description.contains("unavailable") == true, "\(error?.description ?? "")")
    }
}
