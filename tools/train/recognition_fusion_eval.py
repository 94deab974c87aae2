"""Measuring the fusion on degraded captures: the same capture pairs for every row.

Captures: ``views`` consecutive samples of one palm and session (windows starting at every
sample, so 8 captures of 3 views per palm and session of 10), each with ``n_bad`` of its views
degraded (recognition_fusion_data.view_versions, a fixed seed). Cross-session: genuine = the
same palm's captures of the other session, impostor = every other palm's; scores symmetrised
(template of one capture against the shifted query of the other, both ways, averaged), as
``palmgate evaluate`` does.

Rows: a fusion net (fused template and query, its importance); the mean of the views' cells;
the mean of the V x V view-pair scores; the best of them (the reference a 1:N search cannot
afford: V x V comparisons per template).
"""
from __future__ import annotations

import numpy as np
import torch

from tools.train.recognition_fusion_data import captures, view_versions

CONDITIONS = {"3views_2degraded": (3, 2), "3views_1degraded": (3, 1), "3views_clean": (3, 0),
              "1view_clean": (1, 0), "1view_degraded": (1, 1)}


def capture_set(data, palms, views: int, n_bad: int, seed: int = 1234):
    """(idx (n, V), versions (n, V), labels, sessions) of the evaluation captures of
    ``palms`` (a CellSet ``data``)."""
    sets, lab, ses = captures(data.labels, data.sessions, views, stride=1)
    keep = np.isin(lab, palms)
    sets, lab, ses = sets[keep], lab[keep], ses[keep]
    ver = view_versions(np.random.default_rng([seed, views, n_bad]), len(sets), views, n_bad,
                        data.reps)
    return sets, ver, lab, ses


def _metrics(sc: np.ndarray, gen: np.ndarray) -> dict:
    from device.eval.metrics import eer, tar_at_far
    g, i = sc[gen], sc[~gen]
    tar = float(tar_at_far(g, i, 1e-4))
    return {"eer": float(eer(g, i)), "tar_1e-4": tar, "frr_1e-4": 1.0 - tar,
            "genuine": int(g.size), "impostor": int(i.size)}


def _sym_scores(feats: np.ndarray, importance=None) -> np.ndarray:
    from device.recognition.cells import shift_max_scores
    zero = feats.shape[1] // 2
    s = shift_max_scores(feats, feats[:, zero], importance).T     # (templates, queries)
    return (s + s.T) / 2


@torch.no_grad()
def fuse(net, data, sets, ver, batch: int = 24) -> np.ndarray:
    """Fused (n, 25, 49, 16): the net's, or (net None) the unit mean of the views' cells."""
    out = []
    for k in range(0, len(sets), batch):
        c = data.batch(sets[k:k + batch], ver[k:k + batch])
        if net is None:
            f = c.mean(1)
            f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        else:
            f, _ = net(c)
        out.append(f.numpy())
    return np.concatenate(out)


def feature_row(feats, lab, ses, importance=None) -> dict:
    s = _sym_scores(feats, importance)
    i, j = np.flatnonzero(ses == 1), np.flatnonzero(ses == 2)
    return _metrics(s[np.ix_(i, j)], lab[i][:, None] == lab[j][None, :])


def pair_rows(data, sets, ver, lab, ses) -> dict:
    """The mean and the best of the V x V view-pair scores."""
    n, v = sets.shape
    flat = data.batch(sets.reshape(-1, 1), ver.reshape(-1, 1))[:, 0].numpy()
    s = _sym_scores(flat).reshape(n, v, n, v)
    i, j = np.flatnonzero(ses == 1), np.flatnonzero(ses == 2)
    gen = lab[i][:, None] == lab[j][None, :]
    sub = s[i][:, :, j]                                     # (n1, V, n2, V)
    return {"pair_mean": _metrics(sub.mean((1, 3)), gen),
            "pair_best": _metrics(sub.max((1, 3)), gen)}


def table(nets: dict, data, palms, conditions=CONDITIONS, baselines: bool = True,
          log=print) -> dict:
    """{condition: {row: metrics}} for the named nets and (``baselines``) the mean of the
    views' cells and the pair-score rules, all on the same captures."""
    out = {}
    for cond, (views, bad) in conditions.items():
        sets, ver, lab, ses = capture_set(data, palms, views, bad)
        rows = {}
        for name, net in nets.items():
            w = net.importance().detach().numpy()
            rows[name] = feature_row(fuse(net, data, sets, ver), lab, ses, w)
        if baselines:
            rows["mean_of_views"] = feature_row(fuse(None, data, sets, ver), lab, ses)
            if views > 1:
                rows.update(pair_rows(data, sets, ver, lab, ses))
        out[cond] = rows
        log(f"eval {cond}: " + "; ".join(
            f"{k} {r['eer'] * 100:.3f}%/{r['frr_1e-4'] * 100:.2f}%" for k, r in rows.items()))
    return out


def kind_rows(data, palms) -> dict:
    """One view, per degradation kind: clean session-1 templates against session-2 queries
    degraded by that kind (first draw), every image pair."""
    from device.eval.degrade import KINDS
    from tools.train.recognition_fusion_data import dequant, version_index
    idx = np.flatnonzero(np.isin(data.labels, palms))
    lab, ses = data.labels[idx], data.sessions[idx]
    clean = dequant(data.cells[idx, 0])
    out = {}
    for k, kind in enumerate(KINDS):
        deg = dequant(data.cells[idx, version_index(k, 0)])
        out[kind] = feature_row(np.where((ses == 2)[:, None, None, None], deg, clean), lab, ses)
    return out
