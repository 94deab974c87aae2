{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "b909a60386a2b1fe0d6a3c62e10a6dcc43c0de978171ed7b198a7171691e8296",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "IZW5I8wc6GEvHBB3o7re/82noEpGAKiaeP79mWFQB6J+XFKL+OQJSn1jI5SucCO5aG1P+UGSEFsCuC1KS2EeDg=="
    }
  ]
}
