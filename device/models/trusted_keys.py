"""The Ed25519 public keys whose signature on models/manifest.json the gate accepts.

Key id (first 16 hex digits of the sha256 of the raw key) -> base64 of the 32 raw public-key
bytes, as ``python -m tools.sign_manifest --generate PATH`` prints it (PATH.pub). Adding or
removing a key is a reviewed code change (docs/model-signing.md); the private keys are never in
the repository.
"""

RELEASE_KEYS: dict[str, str] = {
    # PalmGate release key 1, generated 2026-12-05 for the first signed release; private half
    # held by the release owner outside the repository.
    "78383ab4fdeada69": "c22D6sSxqids+NoNoF9rJTfU7IF+Mp26cHKFqP1CGLY=",
    # PalmGate release key 2, generated 2026-12-06: the private half of key 1 was lost with the
    # machine that held it (lost, not leaked, so key 1 stays trusted for the manifests it
    # signed); releases from now on are signed with key 2 (docs/model-signing.md).
    "2dc30179c712dcb1": "ojNC9g6jc1VZdPehEcPYEsBo59oDieO5fa/xTv6NhKs=",
    # PalmGate release key 3, generated 2026-12-07: key 2's private half was lost the same way
    # (a development machine reset between sessions; lost, not leaked, so key 2 stays trusted
    # for the manifests it signed); releases from now on are signed with key 3.
    "e6068c1534075051": "vuSV7iEbZrPg4+LL7nHk9ThTOn3LOGA2FhFqjmUvIYw=",
    # PalmGate release key 4, generated 2026-12-07 (a later session): key 3's private half was
    # lost with its machine like keys 1 and 2 (lost, not leaked: key 3 stays trusted for what it
    # signed); releases from now on are signed with key 4.
    "33ce59795f0619eb": "yoec3OMCWw8ue4dUEm4JoS5CCLS6cwpPaCPAgrB1wcU=",
    # PalmGate release key 5, generated 2026-12-07 (the eighth session): key 4's private half
    # was lost with its machine like keys 1-3 (lost, not leaked: key 4 stays trusted for what
    # it signed); releases from now on are signed with key 5.
    "2962b34f85d5644c": "jzTcC4mhoP8bdLkXib5uoaNDT56XvLfpwnmz+JVah7s=",
}
