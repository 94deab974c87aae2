{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "bfcd81015ed7dc92611bda5d4f40a1941380a7d324c8443e778385c2eac641e9",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "uze+k3ov4k41Q/QWAedILD3aAaCpnsJsMDHkCK5xqk7guc/on2SxyLSME2DkHoeer6U1zA49E12ooMum+r2sDg=="
    }
  ]
}
