{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "c5c60ca394a4790319c514ba12dd6f0c428126d5f17c3dc95773b22ed80d73b3",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "H4dhJjbHP33eDzIzJQZc0rv9rKLny/SDdWRHoXAGiWn7/hplyhQuaqi/UmUjYuuTt0xHstes0S6VnjKhBNI1Dg=="
    }
  ]
}
