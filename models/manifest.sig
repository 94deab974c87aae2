{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "d4e63ebe0f0ebfd547a65575f58e429940c36a555711229d900fbff2f3edc809",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "FYpod0+4uuRaLEyPIqsxbqpQFRx/68MBKUxGjcryXS8J/Vi7oLZuqoVfSgoREHAirOffERUUY1Tsmwl4DUVcBw=="
    }
  ]
}
