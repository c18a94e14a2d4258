import GRPCCore
import PodLab
import Testing

@testable import IstioCA

/// The pure parts: CA_ADDR parsing, refusals at init, header names, token trimming, the retry policy.
@Suite struct IstioCAConfigurationTests {
    static let someRootPEM: String = {
        // Any parseable certificate: the client only checks the roots parse at init.
        (try? TestTLSCredentials.unrelatedRootPEM()) ?? ""
    }()

    @Test(arguments: [
        "", "istiod", "istiod:", "istiod:abc", "istiod:0", "istiod:70000", "istiod:-1", ":15012",
        "::1:15012", "[::1:15012", "[::1]", "[::1]15012", "[not-v6]:15012", "bad host:15012", "istiod..svc:15012",
    ])
    func badAddressesAreRefusedAtInit(address: String) {
        let configuration = IstioCAClientConfiguration(address: address, rootCertificatesPEM: Self.someRootPEM)
        let error = #expect(throws: IstioCAError.self) {
            _ = try IstioCAClient(configuration: configuration, logger: quietLogger)
        }
        #expect(error?.description.contains("CA_ADDR \"\(address)\"") == true, "\(error?.description ?? "")")
        #expect(error?.isRetryable == false)
    }

    @Test func addressesAreTakenApart() throws {
        #expect(try CAAddress.parse("istiod.istio-system.svc:15012") == CAAddress(host: "istiod.istio-system.svc", port: 15012, kind: .dnsName))
        #expect(try CAAddress.parse("10.0.0.1:15012") == CAAddress(host: "10.0.0.1", port: 15012, kind: .ipv4))
        #expect(try CAAddress.parse("[fd00::1]:15012") == CAAddress(host: "fd00::1", port: 15012, kind: .ipv6))
        #expect(try CAAddress.parse("[fd00::1]:15012").description == "[fd00::1]:15012")
        #expect(try CAAddress.parse("localhost:15010").kind == .dnsName)
    }

    @Test(arguments: ["istiod.istio-system.svc:15012", "10.0.0.1:15012", "[::1]:15012", "istiod:15010"])
    func goodAddressesAreAccepted(address: String) throws {
        _ = try IstioCAClient(configuration: IstioCAClientConfiguration(address: address, rootCertificatesPEM: Self.someRootPEM),
                              logger: quietLogger)
    }

    @Test func rootsThatAreNotCertificatesAreRefused() {
        let configuration = IstioCAClientConfiguration(address: "istiod:15012", rootCertificatesPEM: "not a certificate")
        let error = #expect(throws: IstioCAError.self) {
            _ = try IstioCAClient(configuration: configuration, logger: quietLogger)
        }
        #expect(error?.description.contains("root certificates") == true, "\(error?.description ?? "")")
    }

    @Test func port15010IsPlaintextEvenWithRoots() throws {
        // Roots that do not parse would be refused if TLS were set up; on 15010 they are not used at all.
        _ = try IstioCAClient(configuration: IstioCAClientConfiguration(address: "istiod:15010", rootCertificatesPEM: "unused"),
                              logger: quietLogger)
    }

    @Test func anISTIODSANThatIsNotADNSNameIsRefused() {
        for name in ["bad name", "10.0.0.2"] {
            let configuration = IstioCAClientConfiguration(address: "10.0.0.1:15012", rootCertificatesPEM: Self.someRootPEM,
                                                           serverName: name)
            let error = #expect(throws: IstioCAError.self) {
                _ = try IstioCAClient(configuration: configuration, logger: quietLogger)
            }
            #expect(error?.description.contains("ISTIOD_SAN \"\(name)\"") == true, "\(error?.description ?? "")")
        }
    }

    @Test func badSettingsAreRefused() {
        var configuration = IstioCAClientConfiguration(address: "istiod:15012", rootCertificatesPEM: Self.someRootPEM)
        configuration.maximumAttempts = 0
        #expect(throws: IstioCAError.self) { _ = try IstioCAClient(configuration: configuration, logger: quietLogger) }
        configuration.maximumAttempts = 5
        configuration.callTimeout = .zero
        #expect(throws: IstioCAError.self) { _ = try IstioCAClient(configuration: configuration, logger: quietLogger) }
    }

    @Test func extraHeaderNamesAreLowerCasedAndChecked() throws {
        let metadata = try CallMetadata(tokenPath: nil, clusterID: "c1", extraHeaders: ["X-Tenant": "blue"]).metadata()
        #expect(Array(metadata[stringValues: "x-tenant"]) == ["blue"])
        #expect(Array(metadata[stringValues: "clusterid"]) == ["c1"])
        for bad in ["has space", "trace-bin", "", "ünïcode"] {
            let error = #expect(throws: IstioCAError.self) {
                _ = try CallMetadata(tokenPath: nil, clusterID: "", extraHeaders: [bad: "v"])
            }
            #expect(error?.description.hasPrefix("CA_HEADER_\(bad)") == true)
        }
        #expect(throws: IstioCAError.self) {
            _ = try CallMetadata(tokenPath: nil, clusterID: "", extraHeaders: ["ok": "line\nbreak"])
        }
    }

    @Test func tokensAreTrimmedAndAbsentWhenMissingOrEmpty() throws {
        let directory = try TemporaryDirectory(prefix: "istioca-test")
        defer { directory.remove() }
        let path = directory.path + "/token"
        let source = try CallMetadata(tokenPath: path, clusterID: "", extraHeaders: [:])
        #expect(try source.readToken() == nil)
        try directory.write("token", "\n\t \r\n")
        #expect(try source.readToken() == nil)
        try directory.write("token", "\n eyJhbGciOi.payload.sig \r\n")
        #expect(try source.readToken() == "eyJhbGciOi.payload.sig")
        #expect(Array(try source.metadata()[stringValues: "authorization"]) == ["Bearer eyJhbGciOi.payload.sig"])
        #expect(try CallMetadata(tokenPath: nil, clusterID: "", extraHeaders: [:]).metadata().isEmpty)
        // Unreadable (here a directory): an error naming the path, not a silent call without a token.
        let error = #expect(throws: IstioCAError.self) {
            _ = try CallMetadata(tokenPath: directory.path, clusterID: "", extraHeaders: [:]).readToken()
        }
        #expect(error?.description.contains(directory.path) == true)
    }

    @Test func retriesFollowIstiosCodes() {
        let retried: [RPCError.Code] = [.cancelled, .deadlineExceeded, .resourceExhausted, .aborted, .internalError, .unavailable]
        let notRetried: [RPCError.Code] = [.unknown, .invalidArgument, .notFound, .alreadyExists, .permissionDenied,
                                           .failedPrecondition, .outOfRange, .unimplemented, .dataLoss, .unauthenticated]
        #expect(retried.allSatisfy(CARetryPolicy.isRetryable))
        #expect(!notRetried.contains(where: CARetryPolicy.isRetryable))
    }

    @Test func backoffDoublesFromTheInitialWithTenPercentJitter() {
        let policy = CARetryPolicy(maximumAttempts: 5, initialBackoff: .milliseconds(100))
        #expect(policy.backoff(afterFailedAttempts: 1, unit: 0) == .milliseconds(100))
        #expect(policy.backoff(afterFailedAttempts: 2, unit: 0) == .milliseconds(200))
        #expect(policy.backoff(afterFailedAttempts: 4, unit: 0) == .milliseconds(800))
        // Scaling by a Double leaves attosecond noise; a microsecond is far below anything that matters.
        func isClose(_ actual: Duration, _ expected: Duration) -> Bool {
            actual - expected < .microseconds(1) && expected - actual < .microseconds(1)
        }
        #expect(isClose(policy.backoff(afterFailedAttempts: 1, unit: 1), .milliseconds(110)))
        #expect(isClose(policy.backoff(afterFailedAttempts: 3, unit: -1), .milliseconds(360)))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            let wait = policy.backoff(afterFailedAttempts: 2, using: &generator)
            #expect(wait >= .milliseconds(180) && wait <= .milliseconds(220))
        }
        #expect(IstioCAClientConfiguration(address: "a:1", rootCertificatesPEM: nil).initialBackoff == .milliseconds(100))
        #expect(IstioCAClientConfiguration(address: "a:1", rootCertificatesPEM: nil).maximumAttempts == 5)
        #expect(IstioCAClientConfiguration(address: "a:1", rootCertificatesPEM: nil).callTimeout == .seconds(10))
    }
}
