{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "d7e348be5d05af94fb99e3bb4f666f89ab9bad47395405cb8159feb7f02410f0",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "tD0vmiqcnEIvPNhMId78WtQC0d7fiA9O+RUKdsTneEkCfuIF+S5iN656vhuU5zHQygEILG1QLYvqVJTRBbZuAA=="
    }
  ]
}
