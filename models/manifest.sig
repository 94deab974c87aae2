{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "a18320f7c3a745396fbea9b6aa921290f6f28be5bde27b4df53a6129178ec228",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "R7jCEtbI/eULlv4yTBJ4ZD+JgcNABbg+uqcm3MUp0QMXpD2nQxkaQf0O2jVoUXX7u3TIavLFnyegPQL8/UlCCw=="
    }
  ]
}
