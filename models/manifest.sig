{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "e9dc9ab4fbe19161bd227845760b0adf12d19341d8fa8c225da517b35e888264",
  "signatures": [
    {
      "key_id": "2962b34f85d5644c",
      "signature": "74bXjJMP4UvDBMx2LHotBON7Xiynl1fepYOxz0CxXt+RRznRdBt9uKjOduBHxGoGoKotIUdlvWlEGdN10k4dAg=="
    }
  ]
}
