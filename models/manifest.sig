{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "a7e65bf98951a95c4f9a8702d3aa0d0ffe948e50a534f5c4104c2200c785b720",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "ii2A2T5g6mtAuu3RIlAkvLJ1Z36/QIh4RJH6SbNKXWzJZqXfBz+jNj0bkzIvdwludrJ0oL9m87ILEcbbA7nJBw=="
    }
  ]
}
