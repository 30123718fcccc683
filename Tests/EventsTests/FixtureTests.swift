import Foundation
import Testing

import Composition
@testable import Events

/// Every (type, version) that may be stored has a golden payload, and each reaches the current
/// shape. Adding an event type or a version without a fixture, or a version without an upcaster,
/// fails here.
@Suite struct FixtureTests {
    static let registry = EventRegistry.chronicle

    static var storedVersions: [String] {
        registry.registrations.flatMap { name, registration in
            registration.storedVersions.map { "\(name).v\($0)" }
        }.sorted()
    }

    static func fixture(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"),
            "no golden fixture Fixtures/\(name).json for a stored (type, version)")
        return try Data(contentsOf: url)
    }

    @Test(arguments: storedVersions)
    func everyStoredVersionDecodesToTheCurrentShape(_ name: String) throws {
        let parts = name.split(separator: ".")
        let type = String(parts[0])
        let version = try #require(Int(parts[1].dropFirst()))
        let event = try Self.registry.decode(type: type, version: version, data: try Self.fixture(name))
        #expect(Swift.type(of: event).eventType == type)
    }

    @Test(arguments: EventRegistry.chronicle.registrations.keys.sorted())
    func currentVersionFixtureRoundTripsByteForByte(_ type: String) throws {
        let registration = try #require(Self.registry.registrations[type])
        let data = try Self.fixture("\(type).v\(registration.currentVersion)")
        let decoded = try Self.registry.decode(type: type, version: registration.currentVersion, data: data)
        let original = try JSONDecoder().decode(JSONValue.self, from: data)
        let reencoded = try JSONDecoder().decode(JSONValue.self, from: try EventCoding.encode(AnyEncodable(decoded)))
        #expect(reencoded == original, "the stored shape of \(type) changed: add a version and an upcaster")
    }

    @Test func fixtureFolderHasNoOrphans() throws {
        let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }
        let expected = Set(Self.storedVersions.map { "\($0).json" })
        #expect(Set(files) == expected)
    }
}

struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}
