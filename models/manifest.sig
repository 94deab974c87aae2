{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "6e2ee0afc8c4c96884f6cd97d6d0c7ddcb4f1a983df597409196593e643b53ef",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "I4IWrvDlgYj1+KkF5+OfnDXVmkenu4G8vYbmbl+6ZThpsu9VjUdc020iZbeVSIK80ygLS07ShG34V3v+wBjvBQ=="
    }
  ]
}
