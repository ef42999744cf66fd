import Testing
@Test func placeholderControllerTests() { #expect(Bool(true)) }
