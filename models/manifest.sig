{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "faff87fb76f7e24c2515ac6dda2b46a5c7194feb01d04583adaf52567c13e587",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "y1J0RFRS+cFjwufmWQf6lwJ1dogl5Dk8rT4H3HE8MeHm/K50rR1y5BgpN9BVI9rulBHOUd553YpeRc1OufMMDA=="
    }
  ]
}
