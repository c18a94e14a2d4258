import ConfigFormats
@testable import DataPlaneConfig
import Testing

@Suite struct ProtobufMergeTests {
    @Test func messagesMergeListsAppendScalarsReplace() {
        let merged = ProtobufMerge.merge(
            ["a": ["b": 1, "c": "x"], "list": [1, 2], "s": "old"],
            ["a": ["c": "y", "d": true], "list": [3], "s": "new"])
        #expect(merged == ["a": ["b": 1, "c": "y", "d": true], "list": [1, 2, 3], "s": "new"])
    }

    @Test func anAnyIsReplacedWhole() {
        let merged = ProtobufMerge.merge(
            ["typed_config": ["@type": "type.googleapis.com/A", "x": 1, "y": 2]],
            ["typed_config": ["@type": "type.googleapis.com/A", "x": 3]])
        #expect(merged == ["typed_config": ["@type": "type.googleapis.com/A", "x": 3]])
    }

    @Test func nullAndDefaultScalarsChangeNothing() {
        let merged = ProtobufMerge.merge(
            ["flag": true, "count": 3, "name": "n", "keep": "k"],
            ["flag": false, "count": 0, "name": "", "keep": nil])
        #expect(merged == ["flag": true, "count": 3, "name": "n", "keep": "k"])
    }

    @Test func wrappersAndOneofMembersAreSetEvenAtTheirDefault() {
        let merged = ProtobufMerge.merge(
            ["transparent": true, "address": ["socket_address": ["address": "::", "port_value": 80]]],
            ["transparent": false, "address": ["socket_address": ["port_value": 0]]])
        #expect(merged == ["transparent": false, "address": ["socket_address": ["address": "::", "port_value": 0]]])
    }

    @Test func aOneofMemberClearsItsSiblings() {
        let merged = ProtobufMerge.merge(
            ["log_format": ["text_format": "%v"], "stats_matcher": ["inclusion_list": ["patterns": [["prefix": "a"]]]]],
            ["log_format": ["json_format": ["m": "%v"]], "stats_matcher": ["reject_all": false]])
        #expect(merged == ["log_format": ["json_format": ["m": "%v"]], "stats_matcher": ["reject_all": false]])
    }

    /// Field names shared with a oneof elsewhere (node.cluster, RouteAction.cluster) are plain where they are.
    @Test func oneofsAreKnownByTheMessageThatHasThem() {
        let merged = ProtobufMerge.merge(["node": ["cluster": "c", "id": "i"]], ["node": ["cluster": "", "id": "j"]])
        #expect(merged == ["node": ["cluster": "c", "id": "j"]])
    }

    @Test func camelCaseFieldsMergeIntoTheirSnakeCaseTwins() {
        let merged = ProtobufMerge.merge(["stats_config": ["use_all_default_tags": false]],
                                         ["statsConfig": ["useAllDefaultTags": true]])
        #expect(merged == ["stats_config": ["use_all_default_tags": true]])
    }

    @Test func nodeMetadataEntriesAreReplacedNotMerged() {
        let merged = ProtobufMerge.merge(
            ["node": ["metadata": ["LABELS": ["app": "a"], "NAME": "n"]]],
            ["node": ["metadata": ["LABELS": ["team": "t"]]]])
        #expect(merged == ["node": ["metadata": ["LABELS": ["team": "t"], "NAME": "n"]]])
    }
}
