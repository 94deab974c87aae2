{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "b82648e0e40d32b39c7dc9de3ffbe95867100a62b25d2febcd323f2966eb368d",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "SnI/vUi7g+DAY0qn8PjQi4bRlauRF96eYIBH2mBA3QvN4H4Bpj/2KkhwF5P4PwN38cYq1bgVU8ilYZySd6jXAA=="
    }
  ]
}
