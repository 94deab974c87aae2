{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "3341ea2a6cfd0e58e95058b156951fdbe7059729c9357d4e3514446a1bbddac4",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "t0bKFVQjLdqP0AXx0C9w37zPPiwcGWO+FcmuIswAal+WancUQC0PKZkwU9Bn5wsHLditp1nq9gcXCch7ZMS2CA=="
    }
  ]
}
