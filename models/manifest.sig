{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "1837ccad59400afee6baf27981dec76fd3ffedbf8f1dc8e2a371bee914e3296a",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "FRxRAJjUhCnbYKI6llXhnjmSmLrrQtxhUUAFfebbD18ROn7EoW0rsr8xOL1GxSck3hENnJ4JYju5nb/mdLe8AA=="
    }
  ]
}
