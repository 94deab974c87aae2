{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "9bef16c656bb3e30abdf508eff44819b7795e7f74f16a7adf063c80ada8f2cf0",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "XJH9xTXzRr0+mEpBsU1gMm57fZveOzZIC2fyZQv68HO0CDdTJy0rA3pD9InU4pRbcQNHHcNKU1J2dudZjRcrDA=="
    }
  ]
}
