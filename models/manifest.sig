{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "a75c26cfe228c98ed38c05089024eb6458d306c2f4658097a415a8c6a5dded5a",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "En3is9hm9HTRfaiB7GniCHocVSlo0w8nmPNr3fPFFqRiSZigeijv0LSP4zdvQwyNX6ghvwf4Xn+vteW4rrX/Bw=="
    }
  ]
}
