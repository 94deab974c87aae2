{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "68178ea80e75332c8e2b309b297b464b6f0855353c32e8bf3466122abae95453",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "9U4YtKaaApsxD3MUsg1FPu1YUkN45OdtnnAfyIGlCxqUitDcBX8gU6wZOeYR8Iw0SCx01QsypW+6Wc+bQxgrCg=="
    }
  ]
}
