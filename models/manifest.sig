{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "f09d4d68d2a21c5abd55becff41f786cd3469e070b3dfeb1ced1f7767272ff33",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "AbUAc2ijBs0CoNTS6IMk4fhEZQO394xIWi57DouBHaoi2I2nGQ0SfdB8Gcl0Bg4IVe5ykD+J7ihl4WBo/ivNDQ=="
    }
  ]
}
