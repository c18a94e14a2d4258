import Testing
@testable import ProxyStats

@Suite struct StatsQueryTests {
    @Test func readsEnvoysAdminParameters() throws {
        let query = try StatsQuery(queryItems: [
            ("format", "json"), ("usedonly", ""), ("filter", #"^server\."#), ("type", "Gauges"), ("pretty", ""),
            ("unknown", "x"),
        ])
        #expect(query.usedOnly)
        #expect(query.filter == #"^server\."#)
        #expect(query.type == .gauges)
    }

    @Test func defaultsSelectEverything() throws {
        let query = try StatsQuery(queryItems: [])
        #expect(!query.usedOnly && query.filter == nil && query.type == .all)
    }

    @Test(arguments: [("All", StatsQuery.StatType.all), ("Counters", .counters), ("Gauges", .gauges),
                      ("Histograms", .histograms), ("TextReadouts", .textReadouts)])
    func typeLabels(_ example: (String, StatsQuery.StatType)) throws {
        #expect(try StatsQuery(queryItems: [("type", example.0)]).type == example.1)
    }

    @Test func unknownTypeIsAnError() {
        #expect(throws: StatsError("type=gauges is not a stats type; use All, Counters, Gauges, Histograms or TextReadouts")) {
            _ = try StatsQuery(queryItems: [("type", "gauges")])
        }
    }

    @Test func filterThatDoesNotCompileIsAnErrorNamingIt() {
        #expect {
            _ = try StatsQuery(queryItems: [("filter", "cluster.(xds")])
        } throws: { error in
            let message = (error as? StatsError)?.message ?? ""
            return message.hasPrefix("the filter= query parameter 'cluster.(xds' is not a valid regular expression: ")
        }
    }

    @Test func firstOfARepeatedParameterCounts() throws {
        let query = try StatsQuery(queryItems: [("filter", "a"), ("filter", "(")])
        #expect(query.filter == "a")
    }

    @Test func filterSearchesAnywhereInTheName() {
        let query = StatsQuery(filter: "downstream_cx")
        #expect(query.selects(name: "listener.0.0.0.0_15001.downstream_cx_total", used: false))
        #expect(!query.selects(name: "cluster.a.upstream_cx_total", used: true))
        #expect(StatsQuery(filter: "").selects(name: "anything", used: false))
    }

    @Test func usedOnlyDropsUnusedStats() {
        #expect(!StatsQuery(usedOnly: true).selects(name: "x", used: false))
        #expect(StatsQuery(usedOnly: true).selects(name: "x", used: true))
    }

    @Test func filterSetLaterIsCompiledAndABadOneSelectsNothing() {
        var query = StatsQuery()
        query.filter = "^tcp\\."
        #expect(query.selects(name: "tcp.a.b", used: false))
        #expect(!query.selects(name: "cluster.a.b", used: false))
        query.filter = "("
        #expect(!query.selects(name: "(", used: false))
        query.filter = nil
        #expect(query.selects(name: "cluster.a.b", used: false))
    }
}
