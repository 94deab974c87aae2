{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "30cb250266ab698965190047a1a6dff39be91410f27bef568e3465f8bc8f527e",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "bK26vMpyvBfkoU/dLNGwKE+0jzl9Cy5APm7J1Li+n7HyK4i6QAEDeoB7mfzSMB0G3q1rsCbFoprVs09aAmLvAA=="
    }
  ]
}
