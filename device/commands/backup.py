"""`palmgate backup | restore`: a whole unit's users, templates, cards and audit log."""
from __future__ import annotations

import json
import os

from device.commands.common import add_config, add_operator, err, load_cfg, open_store, operator


def _passphrase(a):
    """From --passphrase-file (its first line) or $PALMGATE_BACKUP_PASSPHRASE; None: this
    unit's own key (a backup only this unit can restore)."""
    if a.passphrase_file:
        with open(a.passphrase_file) as f:
            pw = f.readline().rstrip("\n")
        if len(pw) < 8:
            raise ValueError(f"--passphrase-file {a.passphrase_file}: the passphrase must be "
                             f"at least 8 characters")
        return pw
    return os.environ.get("PALMGATE_BACKUP_PASSPHRASE") or None


def cmd_backup(a) -> int:
    from device.ops.backup import backup_unit
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        rep = backup_unit(st, a.out, _passphrase(a))
        st.audit.append("backup", terminal=cfg.gate.terminal, operator=operator(a),
                        users=rep["users"], templates=rep["templates"],
                        sensor_templates=rep.get("sensor_templates"))
    print(json.dumps(rep))
    if rep["kdf"] == "device":
        err("palmgate backup: sealed under this unit's key: only this unit (or one with the "
            "same device key) can restore it; use --passphrase-file for a spare unit")
    return 0


def cmd_restore(a) -> int:
    from device.ops.backup import restore_unit
    cfg = load_cfg(a)
    with open_store(cfg) as st:
        # the store's content and its ``restore`` audit record in one transaction
        rep = restore_unit(st, a.file, _passphrase(a),
                           audit={"terminal": cfg.gate.terminal, "operator": operator(a)})
    print(json.dumps(rep))
    return 0


def register(sub) -> None:
    for name, fn, hlp in (
            ("backup", cmd_backup, "write one encrypted file with the users, templates, cards "
                                   "and the audit log (its chain)"),
            ("restore", cmd_restore, "restore a backup into a new unit (palmgate init): the "
                                     "same users and the same audit chain")):
        sp = sub.add_parser(name, help=hlp)
        add_config(sp)
        if name == "backup":
            sp.add_argument("--out", required=True, help="the backup file (written 0600)")
        else:
            sp.add_argument("file", help="a file written by palmgate backup")
        sp.add_argument("--passphrase-file", default=None, metavar="FILE",
                        help="a file whose first line is the passphrase (scrypt): any unit "
                             "can restore the backup with it; default "
                             "$PALMGATE_BACKUP_PASSPHRASE, else this unit's own key")
        add_operator(sp)
        sp.set_defaults(fn=fn)
