"""A site of many gates: enrol once, open everywhere, over an existing MQTT broker (Mosquitto).

- ``sealing``   X25519 / HKDF / AES-GCM / HMAC, pure functions over bytes
- ``templates`` per-gate protection (seed 002, a fresh key per destination gate) and the
               compact wire form of protected templates; the recovery copy
- ``messages``  the framing of every message and the topics
- ``provision`` a site folder: keys, broker credentials and ACL, gate configs
- ``broker``    Mosquitto as a child process (persistence, per-gate users, ACL)
- ``client``    the gate's sync client (a thread of ``palmgate run``, or standalone)
- ``service``   the management service (users, gates, revocations, health, audit)
- ``web``       its admin page
- ``fleet``     ``palmgate fleet-demo``
docs/site.md describes the design, the threat model and the measurements.
"""
