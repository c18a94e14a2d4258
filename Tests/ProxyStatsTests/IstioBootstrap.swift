import Glibc
import Testing
@testable import ProxyStats
import TextFiles

/// The stats settings pilot-agent writes into the bootstrap (`stats_config` in
/// Tests/BootstrapTests/Snapshots/sidecar-ipv4.json), as Swift values. `IstioBootstrapFixtureTests`
/// checks each one against that snapshot, so a change to the agent's bootstrap shows up here.
enum IstioBootstrap {
    static let tags: [(name: String, regex: String)] = [
        ("cluster_name", #"^cluster(\.(.+);)"#),
        ("http_conn_manager_prefix", #"^http\.(((?:[_.[:digit:]\w]*|[_\[\]aAbBcCdDeEfF[:digit:]\w\:]*));\.)"#),
        ("thread_name", #"^server(\.(.+))\.watchdog"#),
        ("tcp_prefix", #"^tcp\.((.*?)\.)\w+?$"#),
        ("response_code", #"_rq(_(\d{3}))$"#),
        ("response_code_class", #"_rq(_(\dxx))$"#),
        ("http_conn_manager_listener_prefix",
         #"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#),
        ("listener_address", #"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#),
        ("mongo_prefix", #"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"#),
        ("cache", #"(cache\.(.+?)\.)"#),
        ("component", #"(component\.(.+?)\.)"#),
        ("tag", #"(tag\.(.+?);\.)"#),
        ("wasm_filter", #"(wasm_filter\.(.+?)\.)"#),
        ("authz_enforce_result", #"rbac(\.(allowed|denied))"#),
        ("authz_dry_run_action", #"(\.istio_dry_run_(allow|deny)_)"#),
        ("authz_dry_run_result", #"(\.shadow_(allowed|denied))"#),
    ]

    /// `stats_matcher.inclusion_list.patterns`, as (kind, JSON key, value).
    static let inclusionPatterns: [(kind: StringMatcher.Kind, key: String, value: String)] = [
        (.prefix, "prefix", "reporter="),
        (.prefix, "prefix", "cluster_manager"),
        (.prefix, "prefix", "listener_manager"),
        (.prefix, "prefix", "server"),
        (.prefix, "prefix", "cluster.xds-grpc"),
        (.prefix, "prefix", "wasm"),
        (.suffix, "suffix", "rbac.allowed"),
        (.suffix, "suffix", "rbac.denied"),
        (.suffix, "suffix", "shadow_allowed"),
        (.suffix, "suffix", "shadow_denied"),
        (.regex, "regex", #"vhost\..*\.route\..*"#),
        (.prefix, "prefix", "component"),
        (.prefix, "prefix", "istio"),
    ]

    /// `use_all_default_tags: false`: Istio's tags only.
    static func tagExtractors() throws -> [TagExtractor] {
        try tags.map { try TagExtractor(name: $0.name, regex: $0.regex) }
    }

    static func inclusion() throws -> StatsInclusion {
        .only(try inclusionPatterns.map { try StringMatcher($0.kind, $0.value) })
    }

    static func snapshotText() -> String? {
        let testsDirectory = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
            .dropLast(2).joined(separator: "/")
        return try? TextFile.read(testsDirectory + "/BootstrapTests/Snapshots/sidecar-ipv4.json")
    }
}

/// A JSON string literal as the bootstrap renderer writes it (only `\` and `"` occur in these).
private func jsonLiteral(_ text: String) -> String {
    var output = "\""
    for character in text {
        if character == "\\" || character == "\"" { output.append("\\") }
        output.append(character)
    }
    return output + "\""
}

private func occurrences(of needle: String, in text: String) -> Int {
    text.split(separator: needle, omittingEmptySubsequences: false).count - 1
}

@Suite struct IstioBootstrapFixtureTests {
    @Test func tagsAreTheOnesTheAgentWrites() throws {
        let snapshot = try #require(IstioBootstrap.snapshotText())
        #expect(snapshot.contains(#""use_all_default_tags": false"#))
        #expect(occurrences(of: #""tag_name":"#, in: snapshot) == IstioBootstrap.tags.count)
        for tag in IstioBootstrap.tags {
            #expect(snapshot.contains(#""tag_name": "# + jsonLiteral(tag.name)), "tag \(tag.name)")
            #expect(snapshot.contains(#""regex": "# + jsonLiteral(tag.regex)), "regex of \(tag.name)")
        }
    }

    /// The agent's standalone bootstrap keeps Istio's list and adds these for its own capture listeners.
    static let sluiceCapturePrefixes = ["listener.", "tcp.", "cluster.PassthroughCluster;", "cluster.InboundPassthroughCluster;"]

    @Test func inclusionListIsIstiosPlusTheCaptureListeners() throws {
        let whole = try #require(IstioBootstrap.snapshotText())
        // Route matchers elsewhere in the bootstrap also use "prefix"; count only the matcher's.
        let snapshot = try #require(whole.split(separator: #""stats_matcher":"#).dropFirst().first.map(String.init))
        let patternCount = occurrences(of: #""prefix":"#, in: snapshot) + occurrences(of: #""suffix":"#, in: snapshot)
            + occurrences(of: #""safe_regex":"#, in: snapshot)
        #expect(patternCount == IstioBootstrap.inclusionPatterns.count + Self.sluiceCapturePrefixes.count)
        for prefix in Self.sluiceCapturePrefixes {
            #expect(snapshot.contains(#""prefix": "# + jsonLiteral(prefix)), "\(prefix)")
        }
        for pattern in IstioBootstrap.inclusionPatterns {
            #expect(snapshot.contains(jsonLiteral(pattern.key) + ": " + jsonLiteral(pattern.value)), "\(pattern.value)")
        }
    }
}
