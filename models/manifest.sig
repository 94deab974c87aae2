{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "13dc642fa271fcb13a24b4010ee45afff63854a2ffea9b2fd70b26a82460ddd7",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "6BZQiwQYRiOKWSgQE25DgwG8AGMiFIZK2MFvmcClP8lH6/gbjteY4lYeEpH5DRIMdFkXWs40KmT75GVbAMyVBw=="
    }
  ]
}
