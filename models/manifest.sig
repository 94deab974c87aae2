{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "a3bb286a4970cddf9c2c62e48af2241275dcb9aeaf8254c42f5f018f59b426fd",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "SshpTH2Hee8ag67Slk+OfJ5nTDgi7pcBokaDZbhBhUcO/v9jX5J0hdw3t9jfadefSxcqgD9V4XF3MoMl4DCxCA=="
    }
  ]
}
