{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "205520a8376b6a343232cd94fce443101317e2a2979df37aefc231c92553fc5a",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "mIndMXUrsTLXIT/pdxXyeO0AFsfLmzTyV+7grpEMjNtgiAwReSqhSUFwTnjTUua3N8hV0//KjighKmdiHmFbBA=="
    }
  ]
}
