import Capture
import DNSResolution
import Testing

private let kubernetesSearch = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]

private func address(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

private func found(_ addresses: String..., via canonicalName: String? = nil) -> LookupAnswer {
    .found(canonicalName: canonicalName, addresses: addresses.map(address))
}

private func lookupTable(_ table: [String: NameTable.NameInfo], podNamespace: String = "default",
                         searchDomains: [String] = kubernetesSearch) -> LookupTable {
    LookupTable(NameTable(table: table), proxyDomain: "svc.cluster.local", podNamespace: podNamespace,
                searchDomains: searchDomains)
}

private let reviews: [String: NameTable.NameInfo] = [
    "reviews.bookinfo.svc.cluster.local": .init(
        ips: ["10.0.0.1"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo"),
]

@Suite struct LookupTableTests {
    // DNS.md §4's worked example: the service in `bookinfo`, the pod in `default`.
    @Test func kubernetesServiceFromAnotherNamespace() {
        let table = lookupTable(reviews)
        #expect(table.hostNames == [
            "reviews.bookinfo.",
            "reviews.bookinfo.default.svc.cluster.local.",
            "reviews.bookinfo.svc.",
            "reviews.bookinfo.svc.cluster.local.",
            "reviews.bookinfo.svc.cluster.local.default.svc.cluster.local.",
            "reviews.bookinfo.svc.default.svc.cluster.local.",
        ])
        #expect(table.hostCount == 6)
        #expect(table.lookup("reviews.bookinfo.svc.cluster.local.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.svc.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.default.svc.cluster.local.", family: .ipv4)
                == found("10.0.0.1", via: "reviews.bookinfo."))
        #expect(table.lookup("reviews.bookinfo.svc.cluster.local.default.svc.cluster.local.", family: .ipv4)
                == found("10.0.0.1", via: "reviews.bookinfo.svc.cluster.local."))
        #expect(table.lookup("reviews.", family: .ipv4) == .notFound)
        #expect(table.lookup("reviews.default.svc.cluster.local.", family: .ipv4) == .notFound)
    }

    @Test func kubernetesServiceFromItsOwnNamespace() {
        let table = lookupTable(reviews, podNamespace: "bookinfo",
                                searchDomains: ["bookinfo.svc.cluster.local", "svc.cluster.local", "cluster.local"])
        // `reviews.` + search[0] is the service's own name, so it gets no CNAME; the name already under
        // search[0] gets none either.
        #expect(table.hostNames == [
            "reviews.",
            "reviews.bookinfo.",
            "reviews.bookinfo.bookinfo.svc.cluster.local.",
            "reviews.bookinfo.svc.",
            "reviews.bookinfo.svc.bookinfo.svc.cluster.local.",
            "reviews.bookinfo.svc.cluster.local.",
        ])
        #expect(table.lookup("reviews.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.svc.cluster.local.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.bookinfo.svc.cluster.local.", family: .ipv4)
                == found("10.0.0.1", via: "reviews.bookinfo."))
    }

    /// istio/istio#31250: a known host without records of the asked family is NODATA, never "not found".
    @Test func missingFamilyIsFoundWithoutAddresses() {
        let table = lookupTable(reviews)
        #expect(table.lookup("reviews.bookinfo.svc.cluster.local.", family: .ipv6) == .found(canonicalName: nil, addresses: []))
        #expect(table.lookup("reviews.bookinfo.default.svc.cluster.local.", family: .ipv6)
                == .found(canonicalName: "reviews.bookinfo.", addresses: []))
    }

    @Test func unknownNamesAreNotFound() {
        let table = lookupTable(reviews)
        for name in ["www.google.com.", "bookinfo.svc.cluster.local.", "svc.cluster.local.", ".", "",
                     "www.google.com.default.svc.cluster.local.", "reviews.bookinfo.svc.cluster.local"] {
            #expect(table.lookup(name, family: .ipv4) == .notFound, "\(name)")
        }
        #expect(LookupTable.empty.hostCount == 0)
        #expect(LookupTable.empty.lookup("reviews.bookinfo.", family: .ipv4) == .notFound)
    }

    @Test func externalRegistryGetsOnlyItsHostname() {
        let table = lookupTable([
            // Even inside the proxy's domain and with a shortname, only the name itself (and its CNAME).
            "reviews.bookinfo.svc.cluster.local": .init(
                ips: ["10.0.0.1"], registry: "External", shortname: "reviews", namespace: "bookinfo",
                altHosts: ["reviews.legacy"]),
            "api.partner.example": .init(ips: ["240.240.0.3", "2001:2::3"], registry: "External"),
        ], searchDomains: [])
        #expect(table.hostNames == ["api.partner.example.", "reviews.bookinfo.svc.cluster.local."])
        #expect(table.lookup("api.partner.example.", family: .ipv4) == found("240.240.0.3"))
        #expect(table.lookup("api.partner.example.", family: .ipv6) == found("2001:2::3"))
    }

    @Test func searchDomainAliasForAnExternalHost() {
        let table = lookupTable(["api.partner.example": .init(ips: ["240.240.0.3", "2001:2::3"], registry: "External")])
        #expect(table.hostNames == ["api.partner.example.", "api.partner.example.default.svc.cluster.local."])
        #expect(table.lookup("api.partner.example.default.svc.cluster.local.", family: .ipv6)
                == found("2001:2::3", via: "api.partner.example."))
        // Only the first search domain is pre-expanded.
        #expect(table.lookup("api.partner.example.svc.cluster.local.", family: .ipv4) == .notFound)
    }

    @Test func kubernetesServiceInAnotherClusterDomainGetsNoShortNames() {
        let table = lookupTable([
            "reviews.bookinfo.svc.remote.local": .init(
                ips: ["10.1.0.1"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo"),
            // Ends with the proxy domain's text but not on a label boundary.
            "reviews.bookinfo.mysvc.cluster.local": .init(
                ips: ["10.1.0.2"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo"),
        ], searchDomains: [])
        #expect(table.hostNames == ["reviews.bookinfo.mysvc.cluster.local.", "reviews.bookinfo.svc.remote.local."])
    }

    @Test func headlessServiceAnswersEveryAddressInOrder() {
        let table = lookupTable([
            "mysql.db.svc.cluster.local": .init(
                ips: ["10.244.1.5", "10.244.2.9", "fd00::5", "10.244.3.2"], registry: "Kubernetes",
                shortname: "mysql", namespace: "db"),
        ])
        #expect(table.lookup("mysql.db.", family: .ipv4) == found("10.244.1.5", "10.244.2.9", "10.244.3.2"))
        #expect(table.lookup("mysql.db.svc.", family: .ipv6) == found("fd00::5"))
    }

    @Test func altHostsOfAKubernetesService() {
        let table = lookupTable([
            "reviews.bookinfo.svc.cluster.local": .init(
                ips: ["10.0.0.1"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo",
                altHosts: ["reviews.legacy", "Reviews.Example.COM."]),
        ], searchDomains: [])
        #expect(table.hostNames == [
            "reviews.bookinfo.", "reviews.bookinfo.svc.", "reviews.bookinfo.svc.cluster.local.",
            "reviews.example.com.", "reviews.legacy.",
        ])
        #expect(table.lookup("reviews.legacy.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.example.com.", family: .ipv4) == found("10.0.0.1"))
    }

    /// Questions arrive as `DNSName.lowercasedKey`; the table's names are lowered to match, and may be
    /// given with the trailing dot.
    @Test func keysAreLowerCase() {
        let table = lookupTable([
            "Reviews.Bookinfo.SVC.cluster.local.": .init(
                ips: ["10.0.0.1"], registry: "Kubernetes", shortname: "Reviews", namespace: "bookinfo"),
            "API.Partner.Example.": .init(ips: ["240.240.0.3"], registry: "External"),
        ], searchDomains: ["Default.SVC.cluster.local."])
        #expect(table.hostNames.allSatisfy { $0 == $0.lowercased() })
        #expect(table.lookup("reviews.bookinfo.svc.cluster.local.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("reviews.bookinfo.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("api.partner.example.", family: .ipv4) == found("240.240.0.3"))
        #expect(table.lookup("api.partner.example.default.svc.cluster.local.", family: .ipv4)
                == found("240.240.0.3", via: "api.partner.example."))
        #expect(table.lookup("API.Partner.Example.", family: .ipv4) == .notFound)
    }

    @Test func unparsableAddressesAreSkipped() {
        let table = lookupTable([
            "broken.example": .init(ips: ["not-an-ip", "10.0.0.300", "010.0.0.1", "fe80::1%", "10.0.0.0/24"], registry: "External"),
            "mixed.example": .init(ips: ["bogus", "10.0.0.5", ""], registry: "External"),
            "zoned.example": .init(ips: ["fe80::1%eth0"], registry: "External"),
            "empty.example": .init(ips: [], registry: "External"),
        ], searchDomains: [])
        #expect(table.hostNames == ["mixed.example.", "zoned.example."])
        #expect(table.lookup("broken.example.", family: .ipv4) == .notFound)
        #expect(table.lookup("mixed.example.", family: .ipv4) == found("10.0.0.5"))
        #expect(table.lookup("zoned.example.", family: .ipv6) == found("fe80::1"))
    }

    @Test func kubernetesEntryWithoutShortnameMakesNoEmptyLabels() {
        let table = lookupTable([
            "foo.bar.svc.cluster.local": .init(ips: ["10.0.0.1"], registry: "Kubernetes"),
        ], podNamespace: "", searchDomains: [])
        #expect(table.hostNames == ["foo.bar.svc.cluster.local."])
        #expect(table.lookup(".", family: .ipv4) == .notFound)
    }

    @Test func wildcards() {
        let table = lookupTable([
            "*.wikipedia.org": .init(ips: ["240.240.0.9"], registry: "External"),
            "*.example.com": .init(ips: ["10.0.0.1"], registry: "External"),
            "*.eu.example.com": .init(ips: ["10.0.0.2"], registry: "External"),
            "api.example.com": .init(ips: ["10.0.0.3"], registry: "External"),
        ], searchDomains: [])
        #expect(table.lookup("en.wikipedia.org.", family: .ipv4) == found("240.240.0.9"))
        #expect(table.lookup("a.b.c.wikipedia.org.", family: .ipv4) == found("240.240.0.9"))
        #expect(table.lookup("en.wikipedia.org.", family: .ipv6) == .found(canonicalName: nil, addresses: []))
        #expect(table.lookup("wikipedia.org.", family: .ipv4) == .notFound)
        #expect(table.lookup("org.", family: .ipv4) == .notFound)
        #expect(table.lookup("enwikipedia.org.", family: .ipv4) == .notFound)
        // The closest enclosing wildcard wins; an exact name wins over any wildcard.
        #expect(table.lookup("shop.eu.example.com.", family: .ipv4) == found("10.0.0.2"))
        #expect(table.lookup("shop.us.example.com.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("eu.example.com.", family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup("api.example.com.", family: .ipv4) == found("10.0.0.3"))
        #expect(table.lookup("v1.api.example.com.", family: .ipv4) == found("10.0.0.1"))
        // The wildcard's own name matches itself, as in Istio.
        #expect(table.lookup("*.example.com.", family: .ipv4) == found("10.0.0.1"))
    }

    /// An escaped dot (`\.`, RFC 1035 presentation form) is inside a label: `a\.eu` is one label under
    /// `example.com.`, so `*.eu.example.com` does not enclose it.
    @Test func wildcardWalkRespectsEscapedDots() {
        let table = lookupTable([
            "*.example.com": .init(ips: ["10.0.0.1"], registry: "External"),
            "*.eu.example.com": .init(ips: ["10.0.0.2"], registry: "External"),
        ], searchDomains: [])
        #expect(table.lookup(#"a\.eu.example.com."#, family: .ipv4) == found("10.0.0.1"))
        #expect(table.lookup(#"a\\.eu.example.com."#, family: .ipv4) == found("10.0.0.2"))
    }

    /// Istio stores `*.x` + search[0] as a CNAME to the literal `*.x.`, and the wildcard walk finds it for
    /// `name.x.<search[0]>.`.
    @Test func wildcardSearchDomainAlias() {
        let table = lookupTable(["*.wikipedia.org": .init(ips: ["240.240.0.9"], registry: "External")])
        #expect(table.hostNames == ["*.wikipedia.org.", "*.wikipedia.org.default.svc.cluster.local."])
        #expect(table.lookup("en.wikipedia.org.default.svc.cluster.local.", family: .ipv4)
                == found("240.240.0.9", via: "*.wikipedia.org."))
    }

    @Test func noSearchDomainsMeansNoAliases() {
        #expect(lookupTable(reviews, searchDomains: []).hostCount == 3)
        #expect(lookupTable(reviews, searchDomains: [""]).hostCount == 3)
    }

    /// Istio resolves name clashes in Go's random map order; here the outcome is fixed: an entry's own
    /// hostname beats another entry's alias, which beats a search-domain CNAME.
    @Test func clashesAreDecidedByRank() {
        let table = lookupTable([
            "reviews.bookinfo.svc.cluster.local": .init(
                ips: ["10.0.0.1"], registry: "Kubernetes", shortname: "reviews", namespace: "bookinfo"),
            "reviews.bookinfo": .init(ips: ["10.0.0.9", "2001:db8::9"], registry: "External"),
            "reviews.bookinfo.default.svc.cluster.local": .init(ips: ["10.0.0.7"], registry: "External"),
        ])
        #expect(table.lookup("reviews.bookinfo.", family: .ipv4) == found("10.0.0.9"))
        #expect(table.lookup("reviews.bookinfo.", family: .ipv6) == found("2001:db8::9"))
        #expect(table.lookup("reviews.bookinfo.default.svc.cluster.local.", family: .ipv4) == found("10.0.0.7"))
        #expect(table.lookup("reviews.bookinfo.svc.", family: .ipv4) == found("10.0.0.1"))
    }

    @Test func sameHostnameSpelledTwiceKeepsTheFirstInSortedOrder() {
        let table = lookupTable([
            "API.example.": .init(ips: ["10.0.0.1"], registry: "External"),
            "api.example": .init(ips: ["10.0.0.2"], registry: "External"),
        ], searchDomains: [])
        #expect(table.hostNames == ["api.example."])
        #expect(table.lookup("api.example.", family: .ipv4) == found("10.0.0.1"))
    }

    /// The proxy answers ≥ 50,000 queries/s; the lookup is a small share of that. Even unoptimised,
    /// 100,000 lookups (hits, aliases, wildcard hits and misses) over a 3,000-service table must take
    /// well under a second of the budget.
    @Test func lookupIsCheap() {
        var entries: [String: NameTable.NameInfo] = [:]
        for index in 0..<3_000 {
            entries["service\(index).namespace\(index % 50).svc.cluster.local"] = .init(
                ips: ["10.\(index / 256 % 256).\(index % 256).1"], registry: "Kubernetes",
                shortname: "service\(index)", namespace: "namespace\(index % 50)")
        }
        entries["*.wikipedia.org"] = .init(ips: ["240.240.0.9"], registry: "External")
        let table = lookupTable(entries)
        let questions = [
            "service17.namespace17.svc.cluster.local.", "service42.namespace42.default.svc.cluster.local.",
            "en.wikipedia.org.", "www.google.com.default.svc.cluster.local.", "www.google.com.",
        ]
        var answered = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for round in 0..<20_000 {
                for question in questions where table.lookup(question, family: round % 2 == 0 ? .ipv4 : .ipv6) != .notFound {
                    answered += 1
                }
            }
        }
        #expect(answered == 60_000)
        #expect(elapsed < .seconds(4), "100,000 lookups took \(elapsed)")
    }
}
