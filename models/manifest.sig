{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "e82ce9db4ff8a332beec13b836e6864f8cefafb4355397166bbb4933edb3d7f8",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "9dzA+VkYJjSyI/JDfPQ2BMmSRICEBC0sDe519HdvSIM+O96u1ASvLbsrrK8mhCpyFrRQ6pCVqnEPsY+euNP/DA=="
    }
  ]
}
