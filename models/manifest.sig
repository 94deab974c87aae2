{
  "algorithm": "ed25519",
  "format": "palmgate-manifest-signature/1",
  "manifest_sha256": "04545a93cf636a613e8e55e65960f6a00bdbe2f1c632c748cb0ed9d1f99ba5b7",
  "signatures": [
    {
      "key_id": "2dc30179c712dcb1",
      "signature": "fTdbj4KKzetKjUWS8RPhWv2xND59dBK/SWEbi4qiOuoFunu+netInzaOnt0j3G2JQrRbg4faGb4GPOfTkzI6Dg=="
    }
  ]
}
