import Testing
@testable import ProxyStats

@Suite struct RegexSyntaxTests {
    @Test func istioAndEnvoyPatternsNeedNoRewriting() {
        for tag in IstioBootstrap.tags {
            #expect(swiftRegexSyntax(tag.regex) == tag.regex, "\(tag.name)")
        }
        #expect(swiftRegexSyntax(#"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#)
            == #"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"#)
    }

    @Test(arguments: [
        // A hyphen beside a class escape: Envoy's own rds_route_config tag.
        (#"[\w-\.]+"#, #"[\w\-\.]+"#),
        (#"[.-\w]"#, #"[.\-\w]"#),
        // A bracket inside a bracket expression is a member, not a nested class.
        (#"[a[b]"#, #"[a\[b]"#),
        // A leading `]` is a member.
        (#"[]a]"#, #"[\]a]"#),
        (#"[^]a]"#, #"[^\]a]"#),
        // Swift's set operators are literals in RE2.
        (#"[a&&b]"#, #"[a\&\&b]"#),
        (#"[a~~b]"#, #"[a\~\~b]"#),
        (#"[a--b]"#, #"[a\-\-b]"#),
        // `{,n}` is a literal in RE2.
        (#"a{,3}"#, #"a\{,3}"#),
        (#"\pL+"#, #"\p{L}+"#),
        (#"\p{Greek}"#, #"\p{Greek}"#),
        (#"\Q[a&&b]\E"#, #"\Q[a&&b]\E"#),
        (#"[[:alpha:][:digit:]]"#, #"[[:alpha:][:digit:]]"#),
        (#"[\[\]]"#, #"[\[\]]"#),
        (#"a-b{2,3}[x-z]"#, #"a-b{2,3}[x-z]"#),
    ])
    func rewritesOnlyWhatSwiftReadsDifferently(_ pair: (String, String)) {
        #expect(swiftRegexSyntax(pair.0) == pair.1)
    }

    @Test func rewrittenPatternsMatchAsRE2Does() throws {
        let routeName = try EnvoyRegex(#"[\w-\.]+"#, role: "test")
        #expect(routeName.matchesWhole("my-route.v1_2"))
        #expect(!routeName.matchesWhole("my route"))
        #expect(try EnvoyRegex(#"[]a]+"#, role: "test").matchesWhole("]a]"))
        #expect(try EnvoyRegex(#"[a&&b]+"#, role: "test").matchesWhole("a&&b"))
        #expect(try EnvoyRegex(#"a{,3}"#, role: "test").matchesWhole("a{,3}"))
        #expect(try EnvoyRegex(#"\pL+"#, role: "test").matchesWhole("abc"))
    }

    @Test func classesAreAsciiAsInRE2() throws {
        #expect(try !EnvoyRegex(#"\w+"#, role: "test").matchesWhole("é"))
        #expect(try !EnvoyRegex(#"\d"#, role: "test").matchesWhole("٣"))
        #expect(try EnvoyRegex(#"."#, role: "test").matchesWhole("é"))
    }

    @Test func regexPrefixTokenFollowsEnvoy() {
        #expect(regexPrefixToken(#"^tcp\.((.*?)\.)\w+?$"#) == "tcp")
        #expect(regexPrefixToken(#"^listener(?=\.).*?\.http\."#) == "listener")
        #expect(regexPrefixToken(#"^server$"#) == "server")
        #expect(regexPrefixToken(#"^cluster(\.(.+);)"#) == nil)
        #expect(regexPrefixToken(#"^(?:listener\.|server\.)worker_((\d+)\.)"#) == nil)
        #expect(regexPrefixToken(#"_rq(_(\d{3}))$"#) == nil)
        #expect(regexPrefixToken(#"^\.x"#) == nil)
    }
}
