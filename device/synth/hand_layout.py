"""Layout of a synthetic hand (pure numpy): a :class:`HandGeometry` in a :class:`HandPose` ->
:class:`HandLayout`, the 2-D outline, valleys, palm ROI, skeleton, veins and creases in the hand
frame (mm), used by both the visible renderer (``hands.py``) and the transmission sensor
(``sensor.py``)."""

from __future__ import annotations

import math

import numpy as np

from device.synth.hand_anatomy import (_CARPALS, FINGERS, Bone, Ellipse, HandGeometry,
                                       HandLayout, HandPose, Joint, Polyline)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (math.hypot(float(v[0]), float(v[1])) + 1e-12)


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a 2-vector toward +x (the thumb side of a right hand) by ``deg``."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def _tapered(base_l: np.ndarray, base_r: np.ndarray, tip: np.ndarray, u: np.ndarray,
             tip_w: float, n_arc: int = 9) -> np.ndarray:
    """Finger outline: ``base_r`` (on the right-hand normal side of ``u``), a round tip of width
    ``tip_w`` ending at ``tip``, then ``base_l``."""
    n = np.array([u[1], -u[0]])            # right-hand normal of the axis
    r = tip_w / 2
    centre = tip - u * r
    ang0 = np.arctan2(n[1], n[0])
    arc = [centre + r * np.array([np.cos(ang0 + t), np.sin(ang0 + t)])  # n -> u -> -n
           for t in np.linspace(0, np.pi, n_arc)]
    return np.array([base_r, *arc, base_l], np.float64)


def _smooth_polygon(poly: np.ndarray, fixed: set[int], iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon, keeping the ``fixed`` vertices (valleys,
    finger-base corners) exactly where they are."""
    pts = [np.asarray(p, np.float64) for p in poly]
    keep = [i in fixed for i in range(len(pts))]
    for _ in range(iterations):
        out, out_keep = [], []
        n = len(pts)
        for i in range(n):
            p, prev, nxt = pts[i], pts[i - 1], pts[(i + 1) % n]
            if keep[i]:
                out.append(p)
                out_keep.append(True)
            else:
                out += [0.75 * p + 0.25 * prev, 0.75 * p + 0.25 * nxt]
                out_keep += [False, False]
        pts, keep = out, out_keep
    return np.array(pts)


def _finger_bones(f: int, geom: HandGeometry, start: np.ndarray, u: np.ndarray,
                  flex: float) -> tuple[list[Bone], list[Joint], np.ndarray]:
    """Phalanges and inter-phalangeal joints of finger ``f`` from the MCP joint centre ``start``
    along ``u``; flexion foreshortens each segment in the palm plane.  Returns the fingertip."""
    names = ("proximal", "middle", "distal")
    seg = (0, 2) if f == 0 else (0, 1, 2)
    jnames = ("ip",) if f == 0 else ("pip", "dip")
    bones: list[Bone] = []
    joints: list[Joint] = []
    pos = start.copy()
    cum = 0.0
    for k, idx in enumerate(seg):
        cum += flex * (1.0 if k == 0 else 0.8)
        c = float(np.cos(np.deg2rad(min(cum, 75.0))))
        a = pos + u * geom.joint_spaces[f][k] * c / 2
        b = a + u * geom.phalanx_lengths[f][idx] * c
        w = geom.bone_widths[f][idx + 1]
        bones.append(Bone(f"{FINGERS[f]}_{names[idx]}", a, b, w, 0.35,
                          0.15 if idx == 2 else 0.3))
        if k + 1 < len(seg):
            g = geom.joint_spaces[f][k + 1] * c
            pos = b + u * g / 2
            joints.append(Joint(f"{FINGERS[f]}_{jnames[k]}", pos, u, w, g,
                                geom.joint_tissue[f][k + 1]))
    tip = bones[-1].b + u * geom.tip_pad
    return bones, joints, tip


def hand_layout(geom: HandGeometry, pose: HandPose | None = None) -> HandLayout:
    """The 2-D hand (outline, valleys, ROI, skeleton, veins, creases) in the hand frame, mm."""
    pose = pose or HandPose()
    W, H = geom.palm_width, geom.palm_height
    top = H / 2
    # finger-base corners e0 (ulnar edge) .. e4 (radial edge), canonical right hand
    fw = np.array(geom.finger_widths[1:][::-1])            # little, ring, middle, index
    xs = -W / 2 + np.concatenate([[0.0], np.cumsum(fw / fw.sum() * W)])
    xs[0] += 0.02 * W
    xs[-1] -= 0.03 * W
    e = np.stack([xs, top - np.array(geom.valley_drop)], axis=1)
    bones: list[Bone] = []
    joints: list[Joint] = []
    polys: dict[int, np.ndarray] = {}
    axes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    widths: dict[int, float] = {}
    focus = np.array([0.05 * W, -H / 2 - 40.0 * geom.size])
    # finger spread, kept fanned out (adjacent fingers diverge by at least 2 deg)
    ang = [geom.finger_angles[f] + pose.spread[f] for f in range(5)]
    ang[1] = max(ang[1], ang[2] + 2.0)
    ang[3] = min(ang[3], ang[2] - 2.0)
    ang[4] = min(ang[4], ang[3] - 2.0)
    web = 2.6 * geom.size                                   # width of the web between fingers
    for k in range(4):                                      # k=0 little ... 3 index
        f = 4 - k
        bl, br = e[k], e[k + 1]
        base = (bl + br) / 2
        t = _unit(br - bl)
        u0 = np.array([-t[1], t[0]])                        # perpendicular, pointing up
        u = _unit(_rot(u0, ang[f]))
        # finger outline starts half a web away from inner valleys and a little above them
        if k > 0:
            bl = bl + t * web / 2 + u0 * web * 0.3
        if k < 3:
            br = br - t * web / 2 + u0 * web * 0.3
        mcp = base - u0 * geom.mcp_depth
        ph, jt, tip = _finger_bones(f, geom, mcp, u, pose.flexion[f])
        mc_dir = _unit(mcp - focus)
        head = mcp - mc_dir * geom.joint_spaces[f][0] / 2
        bones.append(Bone(f"{FINGERS[f]}_metacarpal", head - mc_dir * geom.metacarpal_lengths[f],
                          head, geom.bone_widths[f][0], 0.3, 0.35))
        joints.append(Joint(f"{FINGERS[f]}_mcp", mcp, u, geom.bone_widths[f][1],
                            geom.joint_spaces[f][0], geom.joint_tissue[f][0]))
        bones += ph
        joints += jt
        tip_w = geom.finger_widths[f] * 0.82
        polys[f] = _tapered(bl, br, tip, u, tip_w)
        axes[f] = (base, tip)
        widths[f] = float(np.linalg.norm(e[k + 1] - e[k]))
    # thumb
    cmc = np.array([geom.thumb_base[0] * W, -H / 2 + geom.thumb_base[1]])
    ut = _unit(_rot(np.array([0.0, 1.0]), ang[0]))
    nt = np.array([-ut[1], ut[0]])                          # toward the index side
    mc1_a = cmc + ut * geom.joint_spaces[0][2] / 2
    mc1_b = mc1_a + ut * geom.metacarpal_lengths[0]
    bones.append(Bone("thumb_metacarpal", mc1_a, mc1_b, geom.bone_widths[0][0], 0.3, 0.35))
    mcp1 = mc1_b + ut * geom.joint_spaces[0][0] / 2
    joints.append(Joint("thumb_mcp", mcp1, ut, geom.bone_widths[0][1], geom.joint_spaces[0][0],
                        geom.joint_tissue[0][0]))
    ph, jt, ttip = _finger_bones(0, geom, mcp1, ut, pose.flexion[0])
    bones += ph
    joints += jt
    wt = geom.finger_widths[0]
    s_web = 0.2 * geom.phalanx_lengths[0][0]
    v_t = mcp1 + ut * s_web + nt * wt * 0.5
    th0 = cmc + ut * geom.metacarpal_lengths[0] * 0.25
    outer = mcp1 + ut * s_web - nt * wt * 0.5
    arc = _tapered(v_t, outer, ttip, ut, wt * 0.85)[1:-1]   # from the outer side over the tip
    v_web = v_t + ut * web * 0.8 - nt * web * 0.15          # thumb edge leaves the web here
    thumb_poly = np.array([th0 + nt * wt * 0.75, v_t - ut * web * 0.6 - nt * web * 0.3, v_web,
                           *arc[::-1], outer, th0 - nt * wt * 0.85])
    polys[0] = thumb_poly
    axes[0] = (mcp1, ttip)
    widths[0] = float(wt)
    # palm outline (counter-clockwise from the ulnar wrist corner)
    ww = geom.wrist_width
    palm = np.array([
        [-ww / 2, -H / 2], [-W / 2 - 1.5, -0.15 * H], [-W / 2, 0.3 * H], *e[:4],
        e[4], v_t, [W / 2 + 4.0, v_t[1] - 0.15 * H], [ww / 2 + 3.0, -H / 2]])
    palm = _smooth_polygon(palm, fixed={3, 4, 5, 6, 7, 8}, iterations=2)
    forearm = np.array([[-ww / 2, -H / 2 + 8], [ww / 2 + 3, -H / 2 + 8],
                        [ww / 2 * 1.06 + 3, -H / 2 - 90], [-ww / 2 * 1.06, -H / 2 - 90]])
    # carpals, forearm bones, sesamoids
    carpals = []
    for (name, fx, fy, a, b, ang), (dx, dy, sa, sb, da) in zip(_CARPALS, geom.carpals):
        carpals.append(Ellipse(name, np.array([fx * W + dx, -H / 2 + fy * geom.size + dy]),
                               (1.2 * a * geom.size * sa, 1.2 * b * geom.size * sb), ang + da))
    bones.append(Bone("radius", np.array([0.22 * W, -H / 2 - 120]),
                      np.array([0.13 * W, -H / 2 - 4 * geom.size]), 15.0 * geom.size, 0.0, 0.55))
    bones.append(Bone("ulna", np.array([-0.27 * W, -H / 2 - 120]),
                      np.array([-0.2 * W, -H / 2 - 7 * geom.size]), 10.0 * geom.size, 0.0, 0.25))
    ses = ()
    if geom.sesamoids:
        sr = 2.4 * geom.size
        ses = (Ellipse("sesamoid_r", mcp1 - ut * 2 - nt * 3.2 * geom.size, (sr, sr), 0.0),
               Ellipse("sesamoid_u", mcp1 - ut * 2 + nt * 3.2 * geom.size, (sr, sr), 0.0))
    # ROI square from the ring-little and index-middle valleys
    v_rl, v_mr, v_im = e[1], e[2], e[3]
    span = np.linalg.norm(v_im - v_rl)
    ru = _unit(v_im - v_rl)
    rn = np.array([ru[1], -ru[0]])                           # toward the wrist
    side = 1.25 * span
    centre = (v_rl + v_im) / 2 + rn * (0.25 * span + side / 2)
    hu, hn = ru * side / 2, rn * side / 2
    corners = np.array([centre - hu - hn, centre + hu - hn, centre + hu + hn, centre - hu + hn])
    valleys = {"index_middle": v_im, "middle_ring": v_mr, "ring_little": v_rl, "thumb_index": v_t,
               "ulnar_corner": e[0], "radial_corner": e[4]}
    half = np.array([W / 2, H / 2], np.float32) * (np.float32([-1, 1]) if geom.hand == "left"
                                                   else np.float32([1, 1]))
    veins = tuple(Polyline(v.points * half, v.width, v.depth) for v in geom.veins)
    creases = tuple(Polyline(c.points * half, c.width, c.depth) for c in geom.creases)

    mirror = geom.hand == "left"
    flip = np.array([-1.0, 1.0])

    def m(p: np.ndarray) -> np.ndarray:
        return p * flip if mirror else p

    def m_bone(b: Bone) -> Bone:
        return Bone(b.name, m(b.a), m(b.b), b.width, b.flare_base, b.flare_head)

    if mirror:
        # mirrored ROI: keep "top-left" etc. in image terms: swap left/right corners
        corners = corners[[1, 0, 3, 2]]
    return HandLayout(
        hand=geom.hand,
        palm_polygon=m(palm), forearm_polygon=m(forearm),
        finger_polygons=tuple(m(polys[f]) for f in range(5)),
        finger_axes=tuple((m(axes[f][0]), m(axes[f][1])) for f in range(5)),
        finger_widths=tuple(widths[f] for f in range(5)),
        valleys={k: m(v) for k, v in valleys.items()},
        palm_centre=m(centre), roi_corners=m(corners), roi_side=float(side),
        bones=tuple(m_bone(b) for b in bones),
        joints=tuple(Joint(j.name, m(j.centre), m(j.direction), j.width, j.gap, j.tissue)
                     for j in joints),
        carpals=tuple(Ellipse(c.name, m(c.centre), c.axes, -c.angle if mirror else c.angle)
                      for c in carpals),
        sesamoids=tuple(Ellipse(c.name, m(c.centre), c.axes, c.angle) for c in ses),
        creases_mm=creases, veins_mm=veins,       # already mirrored
    )


def bone_lengths(layout: HandLayout) -> dict[str, float]:
    """Length (mm, in the palm plane) of every bone of a layout, keyed by bone name."""
    return {b.name: float(np.linalg.norm(b.b - b.a)) for b in layout.bones}
