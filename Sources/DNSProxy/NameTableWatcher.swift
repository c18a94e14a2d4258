import DNSResolution
import Logging
import Synchronization
import TextFiles

/// The lookup table queries are answered from. Nil until the first name table is loaded: until then
/// the proxy answers SERVFAIL and the agent is not ready (DNS.md §1), so an app never sees NXDOMAIN
/// for a mesh name because it asked too early (kuma#16294 is that bug).
public final class LookupTableStore: Sendable {
    private let state = Mutex<LookupTable?>(nil)
    /// What the lookup table was built from, for `/debug/ndsz`.
    private let source = Mutex<NameTable?>(nil)

    public init(_ table: LookupTable? = nil) {
        state.withLock { $0 = table }
    }

    /// Read once per query: a copy of the table's storage reference, so a reload never blocks a query
    /// for longer than the swap.
    public var current: LookupTable? { state.withLock { $0 } }

    public var isLoaded: Bool { state.withLock { $0 != nil } }

    /// The name table in service, nil before the first one.
    public var nameTable: NameTable? { source.withLock { $0 } }

    /// Replaces the whole table at once, as Istio replaces it on every NDS push.
    public func replace(with table: LookupTable, builtFrom nameTable: NameTable? = nil) {
        source.withLock { $0 = nameTable }
        state.withLock { $0 = table }
    }
}

/// Where the name table comes from and how its names expand: the JSON file standing in for istiod's
/// NDS pushes, and the pod's domain and search list (DNS.md §4).
public struct NameTableSource: Sendable {
    public var path: String
    /// `--domain` without its leading `<namespace>.`: `svc.cluster.local`.
    public var proxyDomain: String
    public var podNamespace: String
    public var searchDomains: [String]
    public var pollInterval: Duration

    public init(path: String, proxyDomain: String, podNamespace: String, searchDomains: [String],
                pollInterval: Duration = .milliseconds(250)) {
        self.path = path
        self.proxyDomain = proxyDomain
        self.podNamespace = podNamespace
        self.searchDomains = searchDomains
        self.pollInterval = pollInterval
    }

    /// Reads and builds the table now.
    public func load() throws(NameTableLoadError) -> (nameTable: NameTable, lookup: LookupTable) {
        let text: String
        do {
            text = try TextFile.read(path, limit: 256 << 20)
        } catch {
            throw NameTableLoadError(path: path, reason: "\(error)", isMissing: error.isMissing)
        }
        do {
            let table = try NameTable.parse(json: text)
            return (table, LookupTable(table, proxyDomain: proxyDomain, podNamespace: podNamespace, searchDomains: searchDomains))
        } catch {
            throw NameTableLoadError(path: path, reason: error.description, isMissing: false)
        }
    }
}

public struct NameTableLoadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var isMissing: Bool

    public var description: String {
        isMissing ? "DNS name table \(path) does not exist yet" : "DNS name table \(path): \(reason)"
    }
}

/// Loads the name table file and reloads it whenever it changes (a `stat` poll, which also sees
/// kubelet's `..data` symlink swaps of a mounted ConfigMap). A table that fails to parse is logged once
/// and the last good one stays in service.
public struct NameTableWatcher: Sendable {
    public let source: NameTableSource
    public let store: LookupTableStore
    private let logger: Logger

    public init(source: NameTableSource, store: LookupTableStore, logger: Logger) {
        self.source = source
        self.store = store
        self.logger = logger
    }

    /// Polls until cancelled.
    public func run() async {
        var lastSeen = FileSignature(path: source.path)
        reload()
        while !Task.isCancelled {
            try? await Task.sleep(for: source.pollInterval)
            let signature = FileSignature(path: source.path)
            if signature != lastSeen {
                lastSeen = signature
                reload()
            }
        }
    }

    /// One load attempt; the outcome is logged.
    func reload() {
        do {
            let (nameTable, lookup) = try source.load()
            let first = !store.isLoaded
            store.replace(with: lookup, builtFrom: nameTable)
            logger.info("DNS name table \(first ? "loaded" : "reloaded") from \(source.path): \(nameTable.table.count) hosts, \(lookup.hostCount) names")
        } catch {
            if error.isMissing {
                if !store.isLoaded { logger.info("\(error); DNS queries get SERVFAIL until it arrives") }
                else { logger.warning("DNS name table \(source.path) was removed; keeping the last one") }
            } else {
                logger.error("\(error); \(store.isLoaded ? "keeping the last good table" : "DNS queries get SERVFAIL until a valid table arrives")")
            }
        }
    }
}
