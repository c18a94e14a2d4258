import Logging
import TextFiles
import WorkloadIdentity

/// Which served secrets changed, fanned out to every open stream.
public enum SecretUpdate: Sendable, Hashable {
    /// The workload certificate (`default`, and names answered with it).
    case workload
    /// The workload's roots (`ROOTCA`).
    case roots
    /// File-backed resources reading any of these paths.
    case files(Set<String>)
}

extension SecretResource {
    func isAffected(by update: SecretUpdate, systemBundleCandidates: [String]) -> Bool {
        switch (self, update) {
        case (.workloadCertificate, .workload), (.rootCertificate, .roots): true
        case (.fileCertificate(_, let certificate, let key), .files(let paths)): paths.contains(certificate) || paths.contains(key)
        case (.fileRoot(_, let path), .files(let paths)): paths.contains(path)
        case (.systemRoots, .files(let paths)): systemBundleCandidates.contains { paths.contains($0) }
        default: false
        }
    }
}

/// The agent's secrets: the workload certificate from a CA (with rotation) or from files, roots, and
/// file-backed resources, each loaded once, watched, and pushed to the streams when it changes.
public actor SecretStore {
    /// A certificate a CA issued, with the root its chain ends in.
    struct Issued: Sendable {
        var certified: CertifiedKey
        var rootPEM: String
    }

    struct FileEntry {
        var signatures: [FileSignature?]
        var loaded: LoadedFiles
        /// The state last found bad, so one bad write is logged once, not on every check.
        var rejectedSignatures: [FileSignature?]?
        /// `./etc/certs` or mounted credentials: a change there is a change of `default`/`ROOTCA`.
        var servesWorkload: Bool
    }

    public let configuration: SecretStoreConfiguration
    let clock: any SecretClock
    let logger: Logger

    private var issued: Issued?
    private var issuing: Task<Issued, any Error>?
    private var rotation: Task<Void, Never>?
    private var files: [FileSet: FileEntry] = [:]
    private var subscribers: [Int: AsyncStream<SecretUpdate>.Continuation] = [:]
    private var nextSubscriber = 0
    private var version = 0
    private var lastOutput: [String: String] = [:]

    public init(configuration: SecretStoreConfiguration, clock: any SecretClock = SystemSecretClock(), logger: Logger) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
    }

    // MARK: Serving

    /// The material for one resource; loads or issues it on first use. Throws what a data plane should
    /// read in the stream's error: which file, which CA, and why.
    public func material(for resource: SecretResource) async throws(SecretRequestError) -> SecretMaterial {
        switch resource {
        case .workloadCertificate:
            let certified = try await workloadCertificate()
            return .certificate(chainPEM: certified.chain.pem, keyPEM: certified.keyPEM)
        case .rootCertificate:
            return .roots(pem: try await workloadRoots(), crlPath: existingCRL())
        case .fileCertificate(_, let certificatePath, let keyPath):
            let certified = try fileCertificate(chain: certificatePath, key: keyPath, servesWorkload: false)
            return .certificate(chainPEM: certified.chain.pem, keyPEM: certified.keyPEM)
        case .fileRoot(_, let path):
            return .roots(pem: try fileRoots(path, servesWorkload: false), crlPath: nil)
        case .systemRoots:
            guard let bundle = configuration.systemBundleCandidates.first(where: { FileSignature(path: $0) != nil }) else {
                throw SecretRequestError("file-root:system: no CA bundle on this system; looked for "
                    + configuration.systemBundleCandidates.joined(separator: ", "))
            }
            return .roots(pem: try fileRoots(bundle, servesWorkload: false), crlPath: nil)
        }
    }

    /// Responses carry `<RFC 3339 time>/<counter>` as Istio's do, so every push is a new version.
    public func nextVersion() -> String {
        version += 1
        return "\(clock.now().rfc3339)/\(version)"
    }

    // MARK: Streams

    /// Updates for one stream, until `unsubscribe`.
    public func subscribe() -> (id: Int, updates: AsyncStream<SecretUpdate>) {
        let (updates, continuation) = AsyncStream<SecretUpdate>.makeStream(bufferingPolicy: .unbounded)
        nextSubscriber += 1
        subscribers[nextSubscriber] = continuation
        return (nextSubscriber, updates)
    }

    public func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.finish()
    }

    private func publish(_ update: SecretUpdate) {
        for continuation in subscribers.values { continuation.yield(update) }
    }

    // MARK: Background work

    /// Warms the workload certificate (so the data plane's first request is answered at once) and
    /// watches the files in use, until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.warmUp() }
            group.addTask { await self.watchFiles() }
        }
        rotation?.cancel()
        issuing?.cancel()
        for continuation in subscribers.values { continuation.finish() }
    }

    private func warmUp() async {
        guard case .signing(let signing) = configuration.workload else { return }
        var delay = signing.retryFloor
        while !Task.isCancelled {
            do {
                _ = try await workloadCertificate()
                _ = try await workloadRoots()
                return
            } catch {
                logger.warning("failed to warm certificate: \(error); retrying in \(delay)")
                guard (try? await Task.sleep(for: delay)) != nil else { return }
                delay = min(delay * 2, signing.retryCeiling)
            }
        }
    }

    private func watchFiles() async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: configuration.fileCheckInterval)) != nil else { return }
            checkFiles()
        }
    }

    /// Reloads every file set whose files changed; a set that no longer loads keeps its last good
    /// material, so a half-written rotation never takes the data plane's certificate away.
    func checkFiles() {
        for (set, entry) in files {
            let signatures = FileSignature.of(set)
            guard signatures != entry.signatures, signatures != entry.rejectedSignatures else { continue }
            do {
                let loaded = try FileCredentials.load(set, at: clock.now())
                files[set] = FileEntry(signatures: signatures, loaded: loaded, rejectedSignatures: nil, servesWorkload: entry.servesWorkload)
                logger.info("reloaded \(set) after a change")
                if entry.servesWorkload {
                    writeOutput(certificate: loaded.certificate, roots: loaded.roots)
                    if loaded.certificate != nil { publish(.workload) }
                    if loaded.roots != nil { publish(.roots) }
                } else {
                    publish(.files(Set(set.paths)))
                }
            } catch {
                files[set]?.rejectedSignatures = signatures
                logger.error("changed files \(set) were not loaded, still serving the last good secret: \(error)")
            }
        }
    }

    // MARK: Workload certificate

    private func workloadCertificate() async throws(SecretRequestError) -> CertifiedKey {
        switch configuration.workload {
        case .files(let credentials):
            return try fileMaterial(.credentials(credentials), servesWorkload: true).certificate!
        case .signing(let signing):
            if let preferred = signing.preferredFiles, Self.hasContent(preferred.certificateChain), Self.hasContent(preferred.key) {
                return try fileCertificate(chain: preferred.certificateChain, key: preferred.key, servesWorkload: true)
            }
            if let issued, clock.now() < issued.certified.chain.notAfter { return issued.certified }
            return try await issue(signing).certified
        }
    }

    private func workloadRoots() async throws(SecretRequestError) -> String {
        switch configuration.workload {
        case .files(let credentials):
            return try fileMaterial(.credentials(credentials), servesWorkload: true).roots!
        case .signing(let signing):
            if let preferred = signing.preferredFiles, Self.hasContent(preferred.roots) {
                return try fileRoots(preferred.roots, servesWorkload: true)
            }
            if let issued { return issued.rootPEM }
            return try await issue(signing).rootPEM
        }
    }

    /// One CSR at a time: concurrent callers share the request in flight (Istio serializes generation to
    /// avoid CSR storms when many streams open at once).
    private func issue(_ signing: SecretStoreConfiguration.Signing) async throws(SecretRequestError) -> Issued {
        let task: Task<Issued, any Error>
        let started: Bool
        if let issuing {
            (task, started) = (issuing, false)
        } else {
            let now = clock.now()
            task = Task { try await Self.requestCertificate(signing, at: now) }
            issuing = task
            started = true
        }
        do {
            let fresh = try await task.value
            if started {
                issuing = nil
                install(fresh, signing)
            }
            return fresh
        } catch {
            if started { issuing = nil }
            let reason = (error as? SecretRequestError)?.description ?? "\(error)"
            throw SecretRequestError("cannot get a certificate for \(signing.identity) from the \(signing.signerName): \(reason)")
        }
    }

    /// A fresh key and CSR, the CA's answer, and the checks Istio's agent makes on it (plus the chain's
    /// signatures): a CA that answers for someone else, or with a broken chain, is refused.
    private static func requestCertificate(_ signing: SecretStoreConfiguration.Signing, at now: WallClockTime) async throws -> Issued {
        let key = try WorkloadKey.generate(signing.keyAlgorithm)
        let csr = try CertificateSigningRequestBuilder.pem(for: signing.identity, key: key)
        let answer = try await signing.signer.sign(csrPEM: csr, validity: signing.ttl)
        let chain = try CertificateChain(pems: answer)
        try await ChainCheck.checkIssued(chain, for: signing.identity, key: key, at: now)
        let certified = try CertifiedKey(chain: chain, keyPEM: key.pem(pkcs8: signing.pkcs8))
        return Issued(certified: certified, rootPEM: chain.lastCertificatePEM)
    }

    private func install(_ fresh: Issued, _ signing: SecretStoreConfiguration.Signing) {
        let previous = issued
        issued = fresh
        let chain = fresh.certified.chain
        var generator = SystemRandomNumberGenerator()
        let rotateAt = signing.rotation.rotationTime(notBefore: chain.notBefore, notAfter: chain.notAfter, now: clock.now(), using: &generator)
        logger.info("issued \(signing.identity) by the \(signing.signerName), valid until \(chain.notAfter); rotating at \(rotateAt)")
        writeOutput(certificate: fresh.certified, roots: fresh.rootPEM)
        scheduleRotation(at: rotateAt, signing)
        if previous != nil { publish(.workload) }
        if let previous, previous.rootPEM != fresh.rootPEM { publish(.roots) }
    }

    private func scheduleRotation(at deadline: WallClockTime, _ signing: SecretStoreConfiguration.Signing) {
        rotation?.cancel()
        let clock = self.clock
        rotation = Task {
            guard (try? await clock.sleep(until: deadline)) != nil else { return }
            await self.rotate(signing)
        }
    }

    /// A rotation that fails keeps the current certificate in service until it expires, and retries with
    /// backoff; a success is pushed to every stream (by `install`).
    private func rotate(_ signing: SecretStoreConfiguration.Signing) async {
        var delay = signing.retryFloor
        while !Task.isCancelled {
            do {
                _ = try await issue(signing)
                return
            } catch {
                let until = issued.map { "until \($0.certified.chain.notAfter)" } ?? ""
                logger.error("certificate rotation failed, still serving the current certificate \(until): \(error); retrying in \(delay)")
                guard (try? await clock.sleep(until: clock.now() + delay)) != nil else { return }
                delay = min(delay * 2, signing.retryCeiling)
            }
        }
    }

    // MARK: Files

    private func fileMaterial(_ set: FileSet, servesWorkload: Bool) throws(SecretRequestError) -> LoadedFiles {
        if let entry = files[set] { return entry.loaded }
        let signatures = FileSignature.of(set)
        let loaded = try FileCredentials.load(set, at: clock.now())
        files[set] = FileEntry(signatures: signatures, loaded: loaded, rejectedSignatures: nil, servesWorkload: servesWorkload)
        if servesWorkload { writeOutput(certificate: loaded.certificate, roots: loaded.roots) }
        return loaded
    }

    private func fileCertificate(chain: String, key: String, servesWorkload: Bool) throws(SecretRequestError) -> CertifiedKey {
        guard let certified = try fileMaterial(.certificate(chain: chain, key: key), servesWorkload: servesWorkload).certificate else {
            preconditionFailure("a certificate file set loads a certificate")
        }
        return certified
    }

    private func fileRoots(_ path: String, servesWorkload: Bool) throws(SecretRequestError) -> String {
        guard let roots = try fileMaterial(.roots(path), servesWorkload: servesWorkload).roots else {
            preconditionFailure("a roots file set loads roots")
        }
        return roots
    }

    private static func hasContent(_ path: String) -> Bool {
        (FileSignature(path: path)?.size ?? 0) > 0
    }

    private func existingCRL() -> String? {
        guard let path = configuration.crlPath, FileSignature(path: path) != nil else { return nil }
        return path
    }

    // MARK: OUTPUT_CERTS

    /// Writes the workload's key, chain and roots where OUTPUT_CERTS says, when they changed.
    private func writeOutput(certificate: CertifiedKey?, roots: String?) {
        guard let directory = configuration.outputDirectory else { return }
        var outputs: [(String, String)] = []
        if let certificate {
            outputs.append(("key.pem", certificate.keyPEM))
            outputs.append(("cert-chain.pem", certificate.chain.pem))
        }
        if let roots { outputs.append(("root-cert.pem", roots)) }
        for (name, text) in outputs where lastOutput[name] != text {
            let path = (directory.hasSuffix("/") ? directory : directory + "/") + name
            do {
                try TextFile.createDirectory(directory, mode: 0o755)
                try TextFile.writeAtomically(text, to: path, mode: configuration.outputFileMode)
                lastOutput[name] = text
            } catch {
                logger.error("OUTPUT_CERTS: cannot write \(path): \(error)")
            }
        }
    }
}
