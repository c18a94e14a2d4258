import TextFiles
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The figures Prometheus' process collector exports, read from procfs.
struct ProcessStats: Sendable, Equatable {
    var residentMemoryBytes: Int64
    var virtualMemoryBytes: Int64
    var cpuSeconds: Double
    var openFileDescriptors: Int
    var maximumFileDescriptors: Int64?
    var startTimeSeconds: Double?
}

struct ProcessStatsReader: Sendable {
    let procDirectory: String
    let procStatPath: String

    func read() -> ProcessStats? {
        guard let stat = try? TextFile.read(procDirectory + "/stat") else { return nil }
        let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))
        let bootTime = (try? TextFile.read(procStatPath)).flatMap(Self.bootTime)
        guard var stats = Self.parseStat(stat, clockTicks: clockTicks, pageSize: pageSize, bootTime: bootTime) else {
            return nil
        }
        stats.openFileDescriptors = countEntries(procDirectory + "/fd")
        stats.maximumFileDescriptors = (try? TextFile.read(procDirectory + "/limits")).flatMap(Self.maximumOpenFiles)
        return stats
    }

    /// `/proc/<pid>/stat`: fields after the command name (which may itself hold spaces and parentheses).
    static func parseStat(_ text: String, clockTicks: Double, pageSize: Int64, bootTime: Int64?) -> ProcessStats? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // Field 3 (state) is index 0 here; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 21, clockTicks > 0,
              let userTicks = Double(fields[11]), let systemTicks = Double(fields[12]),
              let startTicks = Double(fields[19]), let virtualBytes = Int64(fields[20]), let residentPages = Int64(fields[21])
        else { return nil }
        return ProcessStats(
            residentMemoryBytes: residentPages * pageSize,
            virtualMemoryBytes: virtualBytes,
            cpuSeconds: (userTicks + systemTicks) / clockTicks,
            openFileDescriptors: 0,
            maximumFileDescriptors: nil,
            startTimeSeconds: bootTime.map { Double($0) + startTicks / clockTicks })
    }

    static func bootTime(_ procStat: String) -> Int64? {
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int64(line.dropFirst("btime ".count).trimmingCharacters(in: " "))
        }
        return nil
    }

    /// The soft limit from `/proc/<pid>/limits` ("Max open files  1024  1048576  files").
    static func maximumOpenFiles(_ limits: String) -> Int64? {
        for line in limits.split(separator: "\n") where line.hasPrefix("Max open files") {
            let columns = line.dropFirst("Max open files".count).split(separator: " ")
            guard let soft = columns.first else { return nil }
            return soft == "unlimited" ? Int64.max : Int64(soft)
        }
        return nil
    }

    private func countEntries(_ directory: String) -> Int {
        guard let handle = opendir(directory) else { return 0 }
        defer { closedir(handle) }
        var count = 0
        // Bounded: a process cannot have more descriptors than this.
        for _ in 0..<(1 << 22) {
            guard let entry = readdir(handle) else { break }
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { raw -> Bool in
                let bytes = raw.prefix { $0 != 0 }
                return bytes.elementsEqual([UInt8(ascii: ".")]) || bytes.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
            }
            if !isDot { count += 1 }
        }
        // The directory stream itself holds one descriptor while we count.
        return max(0, count - 1)
    }
}

extension StringProtocol {
    func trimmingCharacters(in character: Character) -> SubSequence {
        var result = self[...]
        while result.first == character { result = result.dropFirst() }
        while result.last == character { result = result.dropLast() }
        return result
    }
}
