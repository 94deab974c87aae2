{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "d1ca0de85d3ae3f47d2d85a8a01be7e059b90ebb1265f62f595dcbe04a8976a5",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "f6RXoWdlSIgWwvHsDclgJmQOTFnXFaubeUY/LghOskREVm/unrg3tDldVdTiVvWLmHqxktdmtfR5R4OsGYDRAA=="
    }
  ]
}
