{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "81231f6ff41a7d0c37268666781d12fbb20a8c6bd4ecd84d1f7453f4e5618742",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "16a6tRwGZLfOs3o6bnZ+O7nEHnATXwWTAuOskBkz7rK4ToDrRPMEqdoRDCXTHVO/OrlgyLDXvfsFdNS2eEzvCw=="
    }
  ]
}
