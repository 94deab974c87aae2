{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "b90c9627c254318e7a9f643282c422ecadc5fdd6015016d8d44fefc9b8365053",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "KoUuUBeTIqcsi8c27ODTnxPIHBWXEMx60ohu/BIfiYHvmv9dZoYsEQTjPu6jsL3Y8NpCKyE4VARfEue8IZi0Aw=="
    }
  ]
}
