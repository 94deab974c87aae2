{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "1a9fa5a3462fdd33fa9fbc74b7f13ee84652e29c40ff9b6ab3e09ae62a7de1bf",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "nZOdbxzvQ1L1M+OOjnMK6sXvipNzBU7hcbBV8x0VyZTW2HjWJXwHnpvbbnSfLI6s3Tk2DqT+mtjaCfsRmFIdBA=="
    }
  ]
}
