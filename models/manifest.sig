{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "cb61a411f14671bf9274f28481b7b2edbba267e97d116bf50a80fadc3f748808",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "FhBN30nOPujQSEuMEGMYJR2lUcGCburlU0/U8bYrgs2dWd/XY/LXw9i7xV3OldfN1P4qNaCwvc2KnygETAl2BA=="
    }
  ]
}
