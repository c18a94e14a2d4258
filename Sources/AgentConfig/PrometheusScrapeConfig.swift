import Capture
import ConfigFormats

/// The application metrics the status server merges into `/stats/prometheus` (STATUS.md §4), from the
/// pod's original `prometheus.io/*` annotations that the injector moved into `ISTIO_PROMETHEUS_ANNOTATIONS`.
public struct PrometheusScrapeConfig: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var port: Int
        public var path: String

        public init(port: Int, path: String = "/metrics") {
            self.port = port
            self.path = path
        }
    }

    /// `scrape: "false"` keeps merging agent and data plane metrics but skips the application.
    public var scrape: Bool
    /// The `targets` list when given, else the single `port`/`path` target.
    public var targets: [Target]

    public init(scrape: Bool = true, targets: [Target]) {
        self.scrape = scrape
        self.targets = targets
    }

    /// Ports Istio keeps for itself: scraping one would loop back into the agent or the data plane.
    public static let reservedPorts: Set<Int> = [15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090]

    public static func parse(_ text: String, statusPort: Int) throws(AgentConfigError) -> PrometheusScrapeConfig {
        let variable = "ISTIO_PROMETHEUS_ANNOTATIONS"
        func fail(_ problem: String) -> AgentConfigError { AgentConfigError("\(variable): \(problem)") }
        let document: JSONValue
        do {
            document = try JSONValue.parse(json: text)
        } catch {
            throw fail("not valid JSON: \(error.message)")
        }
        guard let object = document.objectValue else {
            throw fail("want an object {scrape, path, port}, got \(document.kindDescription)")
        }

        var scrape = true
        if let value = object["scrape"], value != .null {
            // The injector writes the annotation's text; a JSON boolean is accepted too.
            switch value {
            case .bool(let flag): scrape = flag
            case .string(let text) where text.isEmpty: scrape = true
            case .string(let text):
                guard let flag = GoSyntax.parseBool(text) else { throw fail("scrape \(goQuoted(text)) is not \"true\" or \"false\"") }
                scrape = flag
            default: throw fail("scrape \(FieldProblem.render(value)) is not \"true\" or \"false\"")
            }
        }

        func target(_ entry: JSONObject, context: String) throws(AgentConfigError) -> Target {
            var port = 80
            if let value = entry["port"], value != .null {
                switch value {
                case .string(let text) where text.isEmpty: port = 80
                case .string(let text):
                    guard let number = Int(text) else { throw fail("\(context)port \(goQuoted(text)) is not a number") }
                    port = number
                default:
                    guard let number = value.intValue else { throw fail("\(context)port \(FieldProblem.render(value)) is not a number") }
                    port = Int(number)
                }
            }
            guard (1...65535).contains(port) else { throw fail("\(context)port \(port) is out of range 1-65535") }
            if port == statusPort || reservedPorts.contains(port) {
                throw fail("\(context)port \(port) is the agent's or the data plane's own port, which would scrape itself in a loop;"
                    + " make sure the pod's prometheus.io/port annotation names the application's port and that it was injected once")
            }
            var path = "/metrics"
            if let value = entry["path"], value != .null {
                guard let text = value.stringValue else { throw fail("\(context)path must be a string") }
                if !text.isEmpty { path = text.hasPrefix("/") ? text : "/" + text }
            }
            return Target(port: port, path: path)
        }

        var targets: [Target] = []
        if let list = object["targets"], list != .null {
            guard let elements = list.arrayValue else { throw fail("targets must be a list of {port, path}") }
            for (index, element) in elements.enumerated() {
                guard let entry = element.objectValue else { throw fail("targets[\(index)] must be an object {port, path}") }
                targets.append(try target(entry, context: "targets[\(index)]."))
            }
        }
        if targets.isEmpty {
            targets = [try target(object, context: "")]
        }
        return PrometheusScrapeConfig(scrape: scrape, targets: targets)
    }
}
