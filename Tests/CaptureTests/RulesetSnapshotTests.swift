import Capture
import Foundation
import Testing

/// The rendered ruleset of every golden configuration, pinned as a snapshot under `Snapshots/`.
/// A missing snapshot is written and fails the test; `SLUICE_RECORD_SNAPSHOTS=1` re-records all.
@Suite struct RulesetSnapshotTests {
    static let snapshotDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Snapshots")

    @Test(arguments: GoldenConfigurations.all.map(\.name))
    func renderedRulesetMatchesSnapshot(name: String) throws {
        let config = try #require(GoldenConfigurations.all.first { $0.name == name }).config
        let rendered = NftTextRenderer.render(RulesetBuilder.build(config).stamped())
        let file = Self.snapshotDirectory.appendingPathComponent("\(name).nft")
        let recording = ProcessInfo.processInfo.environment["SLUICE_RECORD_SNAPSHOTS"] == "1"
        guard !recording, let recorded = try? String(contentsOf: file, encoding: .utf8) else {
            try FileManager.default.createDirectory(at: Self.snapshotDirectory, withIntermediateDirectories: true)
            try rendered.write(to: file, atomically: true, encoding: .utf8)
            Issue.record("snapshot \(name).nft was (re)recorded; review it and run the tests again")
            return
        }
        #expect(rendered == recorded, "rendered ruleset for \(name) differs from Snapshots/\(name).nft")
    }

    @Test func everyConfigurationHasADistinctFingerprint() {
        let fingerprints = GoldenConfigurations.all.map { RulesetBuilder.build($0.config).fingerprint }
        #expect(Set(fingerprints).count == fingerprints.count)
    }

    @Test func stampingDoesNotChangeTheFingerprint() {
        let ruleset = RulesetBuilder.build(.injectorDefault)
        #expect(ruleset.stamped().fingerprint == ruleset.fingerprint)
        #expect(ruleset.stamped().stampedFingerprint == ruleset.fingerprint)
        #expect(ruleset.stampedFingerprint == ruleset.fingerprint)
        #expect(ruleset.stamped().tables.allSatisfy { $0.comment == Ruleset.stampPrefix + ruleset.fingerprint })
    }
}
