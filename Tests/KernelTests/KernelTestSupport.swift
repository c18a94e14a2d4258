import Glibc
import PodLab
import Testing

/// Kernel tests create network namespaces and load nftables rules: they need root. CI runs as root,
/// so a non-root run is a failure with instructions, never a silent skip.
func requireRoot() throws {
    try #require(geteuid() == 0, "KernelTests need root (network namespaces, nftables): run `sudo swift test`")
}

/// Finds a tool the tests use to observe or set up (never Sources/).
func executable(_ name: String) throws -> String {
    try PodLab.systemExecutable(name)
}

/// The built `sluice-init`, next to the test bundle in the build directory (or `$SLUICE_INIT`).
func sluiceInitPath() throws -> String {
    try PodLab.sluiceInitExecutable()
}

/// Loads nft text into the pod's namespace with `nft -f`.
func loadRuleset(_ text: String, into lab: PodLab) throws {
    let path = try temporaryFile(contents: text)
    defer { unlink(path) }
    let result = try lab.run(try executable("nft"), ["-f", path])
    try #require(result.status == 0, "nft -f failed: \(result)")
}

func temporaryFile(contents: String) throws -> String {
    var template = Array("/tmp/sluice-kernel-test-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    try #require(fd >= 0, "mkstemp: \(String(cString: strerror(errno)))")
    defer { close(fd) }
    let bytes = Array(contents.utf8)
    try #require(write(fd, bytes, bytes.count) == bytes.count)
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
