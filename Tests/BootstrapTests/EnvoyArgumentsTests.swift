import Bootstrap
import ConfigFormats
import Testing

@Suite struct EnvoyArgumentsTests {
    @Test func defaultsMatchIstiosInjectedSidecar() {
        // pilot-agent proxy sidecar --proxyLogLevel=warning --proxyComponentLogLevel=misc:error
        var arguments = EnvoyArguments(configPath: "./etc/istio/proxy/envoy-rev.json")
        arguments.proxyComponentLogLevel = "misc:error"
        arguments.concurrency = 2
        #expect(arguments.arguments == [
            "-c", "./etc/istio/proxy/envoy-rev.json",
            "--drain-time-s", "45",
            "--drain-strategy", "immediate",
            "--local-address-ip-version", "v4",
            "--file-flush-interval-msec", "1000",
            "--disable-hot-restart",
            "--allow-unknown-static-fields",
            "-l", "warning",
            "--component-log-level", "misc:error",
            "--skip-deprecated-logs",
            "--concurrency", "2",
        ])
    }

    @Test func everyOptionalFlagInItsPlace() {
        var arguments = EnvoyArguments(configPath: "/tmp/envoy.json")
        arguments.drainDuration = .milliseconds(30_900)
        arguments.localAddressIPVersion = .v6
        arguments.fileFlushInterval = .milliseconds(250)
        arguments.fileFlushMinimumSizeKilobytes = 64
        arguments.proxyLogLevel = "debug,upstream:trace"
        arguments.proxyComponentLogLevel = "misc:error"
        arguments.skipDeprecatedLogs = false
        arguments.enableCoreDump = true
        arguments.configOverride = ["tracing": ["http": ["name": "envoy.tracers.zipkin"]]]
        #expect(arguments.arguments == [
            "-c", "/tmp/envoy.json",
            "--drain-time-s", "30",
            "--drain-strategy", "immediate",
            "--local-address-ip-version", "v6",
            "--file-flush-interval-msec", "250",
            "--disable-hot-restart",
            "--allow-unknown-static-fields",
            "--file-flush-min-size-kb", "64",
            "-l", "debug",
            "--component-log-level", "upstream:trace",
            "--enable-core-dump",
            "--config-yaml", #"{"tracing":{"http":{"name":"envoy.tracers.zipkin"}}}"#,
        ])
    }

    @Test func zeroConcurrencyPassesNoFlag() {
        var arguments = EnvoyArguments(configPath: "c.json")
        arguments.concurrency = 0
        #expect(!arguments.arguments.contains("--concurrency"))
        arguments.concurrency = -1
        #expect(!arguments.arguments.contains("--concurrency"))
    }

    @Test func componentsOnlyLevelPassesNoDashL() {
        var arguments = EnvoyArguments(configPath: "c.json")
        arguments.proxyLogLevel = "misc:error"
        #expect(!arguments.arguments.contains("-l"))
        #expect(arguments.arguments.contains("misc:error"))
    }

    @Test(arguments: [
        ("warning", "warning", String?.none, [String]()),
        ("warning,misc:error", "warning", "misc:error", []),
        ("misc:error,info,upstream:debug", "info", "misc:error,upstream:debug", []),
        ("debug,a:b:c", "debug", nil, ["a:b:c"]),
        ("info,debug", "debug", nil, []),
        ("", "", nil, []),
    ])
    func proxyLogLevelSplitsLikeIstio(value: String, level: String, components: String?, ignored: [String]) {
        let split = EnvoyArguments.splitProxyLogLevel(value)
        #expect(split.level == level)
        #expect(split.componentLevels == components)
        #expect(split.ignoredEntries == ignored)
    }
}
