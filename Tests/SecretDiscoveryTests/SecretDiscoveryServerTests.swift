import FoundationEssentials
import GRPCCore
import Glibc
import SDSProtos
import SecretDiscovery
import Synchronization
import Testing
import TextFiles
import WorkloadIdentity

/// A real gRPC client on the workload socket against the store and the local CA.
@Suite(.serialized) struct SecretDiscoveryServerTests {
    static let node = "sidecar~10.1.0.5~reviews-v1.default~default.svc.cluster.local"

    @Test func firstResponsesCarryTheWorkloadCertificateAndTheRoot() async throws {
        let harness = try SDSHarness(name: "first")
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default", "ROOTCA"], nodeID: Self.node))
        let response = try await stream.response()
        #expect(response.typeURL == SecretStreamState.secretTypeURL)
        #expect(!response.nonce.isEmpty && response.nonce.count == 36)
        #expect(response.versionInfo.hasSuffix("/1"))
        let secrets = try response.secrets()
        #expect(secrets.map(\.name) == ["default", "ROOTCA"])
        let chain = try CertificateChain(pem: secrets[0].chainPEM)
        #expect(chain.leafURIs == ["spiffe://cluster.local/ns/default/sa/reviews"])
        #expect(chain.certificates.count == 2)
        _ = try CertifiedKey(chain: chain, keyPEM: secrets[0].keyPEM)
        #expect(secrets[0].keyPEM.hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        #expect(secrets[1].rootsPEM == harness.authority.rootCertificatePEM)
        try await ChainCheck.checkIssued(chain, for: SDSHarness.identity, key: try WorkloadKey(pem: secrets[0].keyPEM), at: harness.clock.now())
        stream.cancel()
        await client.close()
        await harness.stop()
    }

    @Test func acknowledgementsRejectionsAndStaleNoncesGetNoAnswer() async throws {
        let harness = try SDSHarness(name: "acks")
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default"], nodeID: Self.node))
        let first = try await stream.response()
        stream.send(.secrets(["default"], responseNonce: first.nonce, versionInfo: first.versionInfo))
        #expect(await stream.staysQuiet())
        stream.send(.secrets(["default"], responseNonce: first.nonce, errorMessage: "Failed to load certificate chain"))
        #expect(await stream.staysQuiet())
        #expect(harness.log.contains("rejected default"))
        // A stale nonce asking for more is ignored ...
        stream.send(.secrets(["default", "ROOTCA"], responseNonce: "stale-nonce"))
        #expect(await stream.staysQuiet())
        // ... the same with the current nonce gets only the added name.
        stream.send(.secrets(["default", "ROOTCA"], responseNonce: first.nonce))
        let added = try await stream.response()
        #expect(try added.secrets().map(\.name) == ["ROOTCA"])
        #expect(added.nonce != first.nonce)
        stream.cancel()
        await client.close()
        await harness.stop()
    }

    @Test func aStreamWithoutANodeIsRefused() async throws {
        let harness = try SDSHarness(name: "nonode")
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default"]))
        guard case .ended(let error?)? = await stream.next(timeout: .seconds(10)) else {
            Issue.record("the stream was not ended")
            return
        }
        let status = try #require(error as? RPCError)
        #expect(status.code == .invalidArgument)
        #expect(status.message.contains("missing node information"))
        await client.close()
        await harness.stop()
    }

    @Test func fetchAnswersOnceAndDeltaIsUnimplemented() async throws {
        let harness = try SDSHarness(name: "fetch")
        let client = try harness.client()
        let response = try await client.fetch(["ROOTCA"])
        #expect(try response.secrets().first?.rootsPEM == harness.authority.rootCertificatePEM)
        await #expect(throws: RPCError.self) {
            try await client.service.deltaSecrets(request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest.self) { writer in
                try await writer.write(Envoy_Service_Discovery_V3_DeltaDiscoveryRequest())
            }) { response in
                for try await _ in response.messages {}
            }
        }
        await client.close()
        await harness.stop()
    }

    @Test func rotationIsPushedToEveryOpenStream() async throws {
        let harness = try SDSHarness(name: "rotation", outputDirectory: true)
        let client = try harness.client()
        let streams = [client.openStream(), client.openStream()]
        var firstChains: [String] = []
        for stream in streams {
            stream.send(.secrets(["default"], nodeID: Self.node))
            let response = try await stream.response()
            stream.send(.secrets(["default"], responseNonce: response.nonce))
            firstChains.append(try response.secrets()[0].chainPEM)
        }
        #expect(firstChains[0] == firstChains[1])
        // A watcher of ROOTCA only is not disturbed by a rotation under the same root.
        let rootWatcher = client.openStream()
        rootWatcher.send(.secrets(["ROOTCA"], nodeID: Self.node))
        _ = try await rootWatcher.response()

        // Before the rotation point nothing happens; past ~50 % of the 24 h lifetime, both streams get a new certificate.
        harness.clock.advance(by: .seconds(6 * 3600))
        #expect(await streams[0].staysQuiet())
        harness.clock.advance(by: .seconds(8 * 3600))
        var pushed: [String] = []
        for stream in streams {
            let push = try await stream.response()
            let secret = try push.secrets()[0]
            #expect(secret.name == "default")
            pushed.append(secret.chainPEM)
        }
        #expect(pushed[0] == pushed[1])
        #expect(pushed[0] != firstChains[0])
        let rotated = try CertificateChain(pem: pushed[0])
        #expect(rotated.notBefore > (try CertificateChain(pem: firstChains[0])).notBefore)
        #expect(await rootWatcher.staysQuiet())
        // OUTPUT_CERTS follows, owner-only.
        #expect(try TextFile.read(harness.scratch.file("out/cert-chain.pem")) == pushed[0])
        var status = stat()
        #expect(stat(harness.scratch.file("out/key.pem"), &status) == 0 && status.st_mode & 0o777 == 0o600)
        for stream in streams + [rootWatcher] { stream.cancel() }
        await client.close()
        await harness.stop()
    }

    @Test func aFailingCAKeepsTheCurrentCertificateAndRetries() async throws {
        let flaky = FlakySigner()
        let harness = try SDSHarness(name: "flaky", signer: flaky)
        flaky.delegate.withLock { $0 = harness.authority }
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default"], nodeID: Self.node))
        let first = try await stream.response()
        flaky.failures.withLock { $0 = 3 }
        harness.clock.advance(by: .seconds(14 * 3600))
        // Three failed attempts (each logged), then the push.
        var push: Envoy_Service_Discovery_V3_DiscoveryResponse?
        for _ in 0..<200 where push == nil {
            harness.clock.advance(by: .seconds(1))
            if case .response(let response)? = await stream.next(timeout: .milliseconds(20)) { push = response }
        }
        let rotated = try #require(push)
        #expect(try rotated.secrets()[0].chainPEM != (try first.secrets()[0].chainPEM))
        #expect(harness.log.all.filter { $0.contains("rotation failed, still serving the current certificate") }.count == 3)
        stream.cancel()
        await client.close()
        await harness.stop()
    }

    @Test func aCAAnsweringForSomeoneElseIsRefusedOnTheStream() async throws {
        let harness = try SDSHarness(name: "impostor", signer: ImpostorSigner())
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default"], nodeID: Self.node))
        guard case .ended(let error?)? = await stream.next(timeout: .seconds(10)) else {
            Issue.record("the stream was not ended")
            return
        }
        let status = try #require(error as? RPCError)
        #expect(status.code == .unavailable)
        #expect(status.message.contains("spiffe://cluster.local/ns/default/sa/reviews"))
        #expect(harness.log.contains("cannot serve default"))
        await client.close()
        await harness.stop()
    }

    @Test func fileCertificatesAreServedWatchedAndKeptWhenABadVersionArrives() async throws {
        let harness = try SDSHarness(name: "files")
        let directory = harness.scratch.file("certs")
        try TextFile.createDirectory(directory, mode: 0o755)
        let first = try await issue(harness.authority)
        try write(first, to: directory)
        let name = "file-cert:\(directory)/cert-chain.pem~\(directory)/key.pem"
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets([name], nodeID: Self.node))
        let response = try await stream.response()
        #expect(try response.secrets()[0].chainPEM == first.chain)
        stream.send(.secrets([name], responseNonce: response.nonce))
        let roots = try await client.fetch(["file-root:\(directory)/root-cert.pem"])
        #expect(try roots.secrets()[0].rootsPEM == first.root)

        // A new pair, written as kubelet does (new files, then a rename): pushed.
        let second = try await issue(harness.authority)
        try write(second, to: directory)
        let push = try await stream.response(within: .seconds(5))
        #expect(try push.secrets().map(\.name) == [name])
        #expect(try push.secrets()[0].chainPEM == second.chain)

        // A key that does not match: logged, not pushed, and new streams still get the last good pair.
        let third = try await issue(harness.authority)
        try TextFile.writeAtomically(third.key, to: directory + "/key.pem")
        #expect(await stream.staysQuiet(for: .milliseconds(500)))
        #expect(harness.log.contains("still serving the last good secret"))
        let late = try await client.fetch([name])
        #expect(try late.secrets()[0].chainPEM == second.chain)
        stream.cancel()
        await client.close()
        await harness.stop()
    }

    @Test func mismatchedAndExpiredFilesAreClearErrors() async throws {
        let harness = try SDSHarness(name: "badfiles")
        let directory = harness.scratch.file("bad")
        try TextFile.createDirectory(directory, mode: 0o755)
        let one = try await issue(harness.authority)
        let other = try await issue(harness.authority)
        try TextFile.writeAtomically(one.chain, to: directory + "/cert-chain.pem")
        try TextFile.writeAtomically(other.key, to: directory + "/key.pem")
        let client = try harness.client()
        await expectFailure(client, "file-cert:\(directory)/cert-chain.pem~\(directory)/key.pem", mentioning: "does not match")
        await expectFailure(client, "file-cert:\(directory)/missing.pem~\(directory)/key.pem", mentioning: "No such file")
        // A certificate that expired (issued by a CA whose clock is two days behind, for one day).
        let past = harness.clock.now() - .seconds(2 * 86400)
        let oldCA = try LocalCertificateAuthority(rootCertificatePEM: harness.authority.rootCertificatePEM,
                                                  rootKeyPEM: harness.authority.rootKeyPEM, trustDomain: "cluster.local", now: { past })
        let expired = try await issue(oldCA)
        try TextFile.writeAtomically(expired.chain, to: directory + "/old-chain.pem")
        try TextFile.writeAtomically(expired.key, to: directory + "/old-key.pem")
        await expectFailure(client, "file-cert:\(directory)/old-chain.pem~\(directory)/old-key.pem", mentioning: "expired")
        await client.close()
        await harness.stop()
    }

    private func expectFailure(_ client: SecretDiscoveryClient, _ name: String, mentioning text: String,
                               sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            _ = try await client.fetch([name])
            Issue.record("\(name) was served", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    private struct Issued {
        var chain: String
        var key: String
        var root: String
    }

    private func issue(_ authority: LocalCertificateAuthority) async throws -> Issued {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let csr = try CertificateSigningRequestBuilder.pem(for: SDSHarness.identity, key: key)
        let pems = try await authority.sign(csrPEM: csr, validity: .seconds(86400))
        return Issued(chain: try CertificateChain(pems: pems).pem, key: key.pem(pkcs8: false), root: pems.last!)
    }

    /// New files then renames, key first, so a reader never sees a chain without its key for long.
    private func write(_ issued: Issued, to directory: String) throws {
        try TextFile.writeAtomically(issued.key, to: directory + "/key.pem")
        try TextFile.writeAtomically(issued.chain, to: directory + "/cert-chain.pem")
        try TextFile.writeAtomically(issued.root, to: directory + "/root-cert.pem")
    }
}

/// Fails the next `failures` signings with an error a CA might give, then signs.
final class FlakySigner: CertificateSigner {
    let failures = Mutex(0)
    let delegate = Mutex<LocalCertificateAuthority?>(nil)

    func sign(csrPEM: String, validity: Duration) async throws -> [String] {
        let fail = failures.withLock { count -> Bool in
            guard count > 0 else { return false }
            count -= 1
            return true
        }
        if fail { throw WorkloadIdentityError("CA unavailable (test)") }
        guard let authority = delegate.withLock({ $0 }) else { throw WorkloadIdentityError("no CA yet") }
        return try await authority.sign(csrPEM: csrPEM, validity: validity)
    }
}

/// Signs every CSR for another workload: the agent must refuse what it gets.
struct ImpostorSigner: CertificateSigner {
    func sign(csrPEM: String, validity: Duration) async throws -> [String] {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local")
        let key = try WorkloadKey.generate(.ecdsaP256)
        let someoneElse = SpiffeIdentity(trustDomain: "cluster.local", namespace: "other", serviceAccount: "intruder")
        return try await authority.sign(csrPEM: try CertificateSigningRequestBuilder.pem(for: someoneElse, key: key), validity: validity)
    }
}
