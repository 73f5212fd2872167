import ArgumentParser
import GantryConfig
import GantryExamples

/// Loading gantry.yaml for a command, with every problem printed as `file:line:col: path: msg`.
enum ConfigFile {
    static func load(_ path: String, endpointsFromCluster: Bool = false) throws -> LoadedConfig {
        try unwrap(ConfigLoader.load(file: path, endpointsFromCluster: endpointsFromCluster))
    }

    /// The file, or the built-in example when there is none.
    static func load(fileOrExample file: String?, endpointsFromCluster: Bool = false) throws -> LoadedConfig {
        guard let file else { return try load(yaml: BuiltInExample.yaml, named: BuiltInExample.name, endpointsFromCluster: endpointsFromCluster) }
        return try load(file, endpointsFromCluster: endpointsFromCluster)
    }

    /// A configuration that ships in the binary; `name` stands for the file in messages.
    static func load(yaml: String, named name: String, endpointsFromCluster: Bool = false) throws -> LoadedConfig {
        try unwrap(ConfigLoader.load(yaml: yaml, file: name, endpointsFromCluster: endpointsFromCluster))
    }

    private static func unwrap(_ result: Result<LoadedConfig, ConfigError>) throws -> LoadedConfig {
        switch result {
        case .success(let loaded):
            return loaded
        case .failure(let error):
            printError(error.description)
            throw ExitCode(2)
        }
    }
}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleWriter.write(string, to: 2)
    }
}

enum FileHandleWriter {
    static func write(_ string: String, to fd: Int32) {
        var bytes = Array(string.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { raw in
                systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written <= 0 { return }
            offset += written
        }
        bytes.removeAll()
    }
}

#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#endif
