import ArgumentParser
import Foundation
import GantryConfig
import GantryExamples
import GantryTLS

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The local certificate authority that signs `tls.selfSigned` certificates.",
        subcommands: [CA.self]
    )

    struct CA: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the path of the local CA's certificate (created if it does not exist yet).",
            discussion: """
                Trust it to reach TLS listeners with self-signed certificates, e.g.
                  curl --cacert "$(gantry certs ca)" --resolve example.com:8443:127.0.0.1 https://example.com:8443/app
                The CA lives in the state directory (runtime.stateDirectory, `.gantry` beside the file).
                """
        )

        @Argument(help: "The configuration file. Default: the built-in example.")
        var file: String?

        func run() throws {
            let loaded = try ConfigFile.load(fileOrExample: file)
            let authority = LocalCertificateAuthority(stateDirectory: loaded.snapshot.stateDirectory)
            _ = try authority.certificateAuthority()
            let path = authority.certificatePath
            print(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
        }
    }
}
