import Bootstrap
import ConfigFormats
import Foundation
import Testing

/// The rendered bootstrap of every fixture, pinned as pretty JSON under `Snapshots/`.
/// A missing snapshot is written and fails the test; `SLUICE_RECORD_SNAPSHOTS=1` re-records all.
@Suite struct BootstrapSnapshotTests {
    static let snapshotDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Snapshots")

    @Test(arguments: BootstrapFixtures.snapshots.map(\.name))
    func renderedBootstrapMatchesSnapshot(name: String) throws {
        let input = try #require(BootstrapFixtures.snapshots.first { $0.name == name }).input
        let rendered = BootstrapBuilder.build(input).renderedJSON(pretty: true)
        let file = Self.snapshotDirectory.appendingPathComponent("\(name).json")
        let recording = ProcessInfo.processInfo.environment["SLUICE_RECORD_SNAPSHOTS"] == "1"
        guard !recording, let recorded = try? String(contentsOf: file, encoding: .utf8) else {
            try FileManager.default.createDirectory(at: Self.snapshotDirectory, withIntermediateDirectories: true)
            try rendered.write(to: file, atomically: true, encoding: .utf8)
            Issue.record("snapshot \(name).json was (re)recorded; review it and run the tests again")
            return
        }
        #expect(rendered == recorded, "rendered bootstrap for \(name) differs from Snapshots/\(name).json")
    }

    @Test(arguments: BootstrapFixtures.snapshots.map(\.name))
    func renderedBootstrapReadsBackAsTheSameValue(name: String) throws {
        let input = try #require(BootstrapFixtures.snapshots.first { $0.name == name }).input
        let built = BootstrapBuilder.build(input)
        #expect(try JSONValue.parse(json: built.renderedJSON(pretty: true)) == built)
        #expect(try JSONValue.parse(json: built.renderedJSON(pretty: false)) == built)
    }

    @Test func everySnapshotConfigurationRendersDifferently() {
        let rendered = BootstrapFixtures.snapshots.map { BootstrapBuilder.build($0.input).renderedJSON() }
        #expect(Set(rendered).count == rendered.count)
    }
}
