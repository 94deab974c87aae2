{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "bd1dbcecb1a8ef1318cdc51ce6f7082a7ece4eb4caa9d786f2edcf796c08853b",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "N0xcXX4YTamCQj5vfNRjl5Qc2EOZTt88gD5DjhfBi8AqLSTZn7aVIHV3y+NQTtXuUmxBhCjj0L87ST8uuXphDQ=="
    }
  ]
}
