{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "744dc9cc7d4477ad6a12f3decd7fa4b38873bb806b416300683419e5b40b85ca",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "fKoT93GE1i2ZnCVmlyhmy6umhmTxTaMtiF+en9wAUa1xvXX4VNi4RgpQbE7bn+Jbhkg9nzRNXnoFR5z6lJq/Dg=="
    }
  ]
}
