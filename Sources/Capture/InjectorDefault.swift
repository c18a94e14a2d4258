extension CaptureConfig {
    /// The flags the sidecar injector renders for a default sidecar, as argv: what `injectorDefault`
    /// resolves from. One copy for the demo and the kernel and conformance tests (Benchmarks/bench.py,
    /// in Python, keeps its own `INJECTOR_FLAGS`).
    public static let injectorDefaultArguments = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                                                  "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]
}
