import Testing
@testable import UndercurrentCLI

/// `HOST:PORT` as the listening flags take it, and the URL a command prints for it.
@Suite struct ListenAddressTests {
    @Test func anIPv6HostIsBracketedInTheURLPrinted() throws {
        // It printed http://::1:8080/, which no browser or curl opens.
        #expect(try ListenAddress.parse("[::1]:0", option: "--listen").url(port: 8080) == "http://[::1]:8080")
        #expect(try ListenAddress.parse("[::]:9464", option: "--listen").url(port: 9464) == "http://[::]:9464")
        #expect(try ListenAddress.parse("127.0.0.1:0", option: "--listen").url(port: 8080) == "http://127.0.0.1:8080")
        #expect(try ListenAddress.parse("localhost:8080", option: "--listen").url(port: 8080) == "http://localhost:8080")
        #expect(throws: (any Error).self) { try ListenAddress.parse("::1", option: "--listen") }
    }
}
