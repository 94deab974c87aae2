{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "d0e6365b0a536b85802917f2ef745430937428acdf0f31ddacea134ace2a513d",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "Ydhpg7Gmo1yEDyCPEwaKw21I9Kg1ptxNN80hLXI858Mj9v5U7NplEhPC1PuHOMZtgviZLSvFlI00Tfxh90O2Cg=="
    }
  ]
}
