{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "9054e45bafea98491597f1d9f2854b7545d24509d41291da4e9c54b5efecad3f",
  "signatures": [
    {
      "key_id": "e6068c1534075051",
      "signature": "KkEu8YgkrbMieGP6B/ErgxOsQTTyriHfMAr7ho3tqnTeVO6kQjtzi54R/mj7ceIJ1tf5DpXmJYkDZLVJFyX3BA=="
    }
  ]
}
