{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "a4b6a7e41909191fa502a7d467538920ea15873bdb84bcd7c6515a254573b30b",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "wH/IE5BpOEGo8fJGSzyPfiMOaL5P76Mhv+Y8HAQss6rjiHn8nxNzTbX9enjegdDhfnrOxl+Yip2e+86qx0zdAQ=="
    }
  ]
}
