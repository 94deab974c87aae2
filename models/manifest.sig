{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "61e6ef97c23648c8299f0af2436b28be4b6c6af152d54c8ccf00121743ace858",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "lLPqZWz/N5OnDMbTcKB87IenoxC9H8wRH+cmh6ZdmzNtWMHspvQ3tKCiEJAP78vmigMAJH8NS4RkqFldtueaDA=="
    }
  ]
}
