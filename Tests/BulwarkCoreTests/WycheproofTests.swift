import BulwarkCore
import Foundation
import Testing

/// Every Ed25519 case of C2SP/wycheproof must get its expected verdict from our verifier.
@Suite struct WycheproofEd25519Tests {
    struct File: Decodable {
        struct Group: Decodable {
            struct Key: Decodable { let pk: String }
            struct Case: Decodable {
                let tcId: Int
                let comment: String
                let msg: String
                let sig: String
                let result: String
            }
            let publicKey: Key
            let tests: [Case]
        }
        let numberOfTests: Int
        let testGroups: [Group]
    }

    @Test(.enabled(if: TestData.available, TestData.skipReason))
    func everyCaseGetsItsExpectedVerdict() throws {
        let data = try Data(contentsOf: TestData.url("wycheproof/ed25519_test.json"))
        let file = try JSONDecoder().decode(File.self, from: data)
        var checked = 0
        for group in file.testGroups {
            let keyBytes = try #require(Hex.decode(group.publicKey.pk))
            for test in group.tests {
                let message = try #require(Hex.decode(test.msg))
                let sigBytes = try #require(Hex.decode(test.sig))
                // A key or signature of the wrong length cannot be represented, so it cannot verify.
                let verdict: Bool
                if let key = PublicKey(keyBytes), let signature = Signature(sigBytes) {
                    verdict = key.isValidSignature(signature, for: message)
                } else {
                    verdict = false
                }
                #expect(verdict == (test.result == "valid"), "tcId \(test.tcId): \(test.comment)")
                checked += 1
            }
        }
        #expect(checked == file.numberOfTests)
    }
}
