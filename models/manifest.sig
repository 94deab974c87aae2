{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "c8bc2add54c4618033c13508a3486cbb3c3f5c725e62e96aac259152a1d399a3",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "0maOP3lN8QF9tiESGDyIYWWod8ma0WhY5dqEmpZSOFhQ7fjt7O+WFk6ejQ8IR0SbgCq4VZzPCzFImR0tyrl3Cg=="
    }
  ]
}
