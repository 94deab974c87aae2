{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "3b6ee0e8d906fc923b46f888221abf6279b5584d2e58866c994f55f79f6f5121",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "3HzcEf6EvEU9eYdOf1UXYvL6lDhZDjSAVgip7c5hysGnmfmMCZqDGmdLZb64aGJbWC5Z4uEPpTtuLVc5rreIDg=="
    }
  ]
}
