{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "efd476ac5534da05be95e8703c3084f3bcbfd65b9e6369728ad88b1165743e2d",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "MCfHa4YIxWKA0MNXKwNsgermQnDT2g1I5JpUw+Tbo14QRUnRfskKrywPL03TIy+sLKDguBjERM8SXPvk3QgOAg=="
    }
  ]
}
