import Commands
import Testing

@Suite struct TextLimitTests {
    @Test func countsCharactersAndBytes() {
        let limit = TextLimit(characters: 1...3)
        #expect(limit.bytes == 12)
        #expect(limit.admits("abc"))
        #expect(limit.admits("日本語"))
        #expect(!limit.admits(""))
        #expect(!limit.admits("abcd"))
        // One character, 13 bytes.
        #expect(!limit.admits("e" + String(repeating: "\u{0301}", count: 6)))
    }

    @Test func saysBothBoundsInItsError() {
        #expect(throws: DomainError(.invalid, code: "x.len", "name must be 1 to 3 characters (at most 12 bytes of UTF-8)")) {
            try TextLimit(characters: 1...3).check("abcd", field: "name", code: "x.len")
        }
    }
}
