{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "29b5c0a2148d96e4a6afad326b6199cdc7b3e4378a117d4877d354e32e3af2e8",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "7/F5LhnOHpSLMNcDw7n45WvSTjFN1WMMoMbaonodGhOuBJHZLzbNm4GoWrfRyVmQIktIEdk444hQMsZUmPKBDA=="
    }
  ]
}
