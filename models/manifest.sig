{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "45528d264042b297853c44e2365bb7b7b439b6b27be53457fb5963b2db76e36f",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "lKD4iSmWngHgKiUNGJCGrZrY270ieVkpPMuLGsCG4BLCLVtrOs4Xt3T/YnG2jLVBpsOuUQu7hEbJMQsnLRzuBw=="
    }
  ]
}
