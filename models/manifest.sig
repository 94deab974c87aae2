{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "884f046b1073717d69e425ba3294180c550da89ac63813d9b9f30d7962899ab9",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "SCMpZQlmuRnoTliotHiib0qBrYg7qA5Kn1h2QCPUjjCcC/4AW9C6W9aPMHFE3D17GJDg2syfdX1j4HzWp8iaDA=="
    }
  ]
}
