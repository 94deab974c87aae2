{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "bb91858b8120f15d2d51c1b50ad3c5028c29fe90436008eea67efb250a6ccb0f",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "eevqqeTxT9y7/kfB83yJqxMQUVrrmYy8ElMZkpk7hEuMvZU7oWjACNIS+B7M60FcsMUkQu9DEHinwIKIIkUFAA=="
    }
  ]
}
