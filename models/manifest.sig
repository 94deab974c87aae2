{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "b98eda2f7d550bfbb5b3379c5a059d61fd17392ef09107523c40ea3129bff6ec",
  "signatures": [
    {
      "key_id": "78383ab4fdeada69",
      "signature": "xicjWw/9TjKmxuFA4LQjfTbxmhXr2Kym3Op1+t6GDujFjep6L3Tu6Xfkahk709xqfim3ELYMo/fOnYtoglLWBw=="
    }
  ]
}
