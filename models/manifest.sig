{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "917fea6468f146f40e9080b0f463d1d6c633e641cb0c08554513a5d4030fc7a4",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "f2U9AuIMDtYhlOLeZ8f/crk6UhStK+TUt3PhBilCDIKKlWnF9rz0VF0jnwZ3p7P2ZditFZM1z03NR3E5Qi/gCQ=="
    }
  ]
}
