"""The configuration sections of the gate's network roles: split mode's two nodes ([split]) and a
site of many gates ([site]); :mod:`device.config` adds them to its schema."""
from __future__ import annotations

from device.config_types import Opt

NETWORK_SECTIONS: dict[str, tuple[str, dict[str, Opt]]] = {
    "split": ("Split mode (seed 003): the palm feature and the 1:N (or 1:1) scores are computed "
              "on additive secret shares by two node processes (palmgate node --role 0|1, on "
              "this board and a second controller, or two processes on one board), so no "
              "single processor holds the palm image, the feature model or a template. The "
              "terminal splits each view's palm region into two shares with os.urandom and "
              "forgets it; node 0 sums the score shares, fuses the views, takes the best "
              "user and decides with its own threshold (palmgate node --threshold). "
              "Enrolment stores each node's share of the feature on that node; the template "
              "store on the terminal gets only the audit record. A node that does not answer, "
              "or a tampered, replayed or dropped message, is a deny (reason split:...), and "
              "the next presentation connects again. off: the feature and the protected "
              "match run in this process (the default; the demo).", {
        "mode": Opt("off", "off: plaintext feature and protected templates in this process; "
                           "split: feature and match on shares by the two nodes.",
                    choices=("off", "split")),
        "transport": Opt("tcp", "Link from the terminal to each node: tcp (node0/node1 = "
                                "host:port), unix (a socket path) or serial (a serial port "
                                "or pyserial URL, at baudrate).",
                         choices=("tcp", "unix", "serial")),
        "node0": Opt("", "Node 0's terminal link (the address given to palmgate node --role "
                         "0 --terminal), e.g. 127.0.0.1:7010, /run/palmgate/node0.sock or "
                         "/dev/ttyAMA1; required in split mode.", nullable=True),
        "node1": Opt("", "Node 1's terminal link, e.g. 127.0.0.1:7011 or /dev/ttyUSB1; "
                         "required in split mode.", nullable=True),
        "baudrate": Opt(921600, "Serial speed of the terminal-node lines (transport serial).",
                        int, min=1200, max=4000000),
        "dir": Opt("", "Provisioning folder written by palmgate split provision: the "
                       "terminal reads its two link keys from terminal_keys.npz here "
                       "(checked at start). The nodes' model shards, Beaver triples and "
                       "template shares (node0_*.npz, node1_*.npz) belong to the nodes, each "
                       "started with palmgate node --dir on its own controller; required in "
                       "split mode.", nullable=True),
        "connect_timeout_s": Opt(2.0, "Longest wait to connect to a node (and pair the "
                                      "link); a node that is not there is a deny, reason "
                                      "split:node_unavailable.", float, min=0.05, max=60.0),
        "reply_timeout_s": Opt(5.0, "Longest wait for a node's answer to one presentation "
                                    "(all views) or enrolment; no answer is a deny, reason "
                                    "split:link_error. Over a 921,600-baud line a decision "
                                    "takes about 6 s per view: raise it there.", float,
                               min=0.05, max=600.0),
    }),
    "site": ("A site of many gates (docs/site.md): a sync client beside the gate loop takes "
             "the enrolments, revocations and changes the site's management service sends "
             "this gate through the site's MQTT broker (Mosquitto), sends this gate's own "
             "enrolments (protected again and sealed to each gate) and its audit records up, "
             "and reports its health. The gate keeps deciding from its own store while the "
             "broker is away. `palmgate site gate-config --dir SITE --gate ID` prints this "
             "section for a provisioned gate.", {
        "enabled": Opt(False, "Run the site sync client with palmgate run (needs the "
                              "paho-mqtt package: pip install 'palmgate[site]').", bool),
        "site": Opt("", "Site name (site.json).", nullable=True),
        "gate_id": Opt("", "This gate's id in the site.", nullable=True),
        "broker_host": Opt("127.0.0.1", "MQTT broker address."),
        "broker_port": Opt(1883, "MQTT broker port.", int, min=1, max=65535),
        "key_file": Opt("", "This gate's X25519 site key (32 bytes, 0600), from "
                            "provisioning.", nullable=True),
        "ca_file": Opt("", "The site CA certificate (PEM): the broker's must chain to it.",
                       nullable=True),
        "cert_file": Opt("", "This gate's TLS client certificate (CN: its gate id).",
                         nullable=True),
        "cert_key_file": Opt("", "Its private key (0600).", nullable=True),
        "service_pub": Opt("", "The management service's X25519 public key (hex): only "
                               "changes tagged under it are applied.", nullable=True),
        "state": Opt("palmgate/sync.db", "The sync client's own SQLite file (changes applied, "
                                          "per-user versions, outbox, audit cursor)."),
    }),
}
