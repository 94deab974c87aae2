"""Synthetic palm identities and their ROI samples: the generation-model stage of the
synthetic data engine (seed 004 stage 2), every sample carrying its candidate's label (claim 3).

One identity = one candidate (its tolerance-rule label is the identity). A sample of it:
candidate jittered inside the tolerance change range -> crease map -> ONNX generation model
with a real-palm condition (Mode B; a different real condition per sample) -> the identity's
own fine skin texture -> pose (rotation, scale, shift of the ROI), light (gain, offset,
gradient), blur and sensor noise. Runs with numpy, OpenCV and onnxruntime only.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from device.models.model import DEFAULT_MODELS_DIR, Model, verified_bytes
from device.synth.bezier import Candidate, CandidateConfig, jitter_candidate, sample_candidate
from device.synth.candidate_render import render_candidate
from device.synth.labels import strict_label

GENERATOR = "palm_generator.onnx"
ENCODER = "palm_style_encoder.onnx"
STYLE_BANK = "palm_style_bank.npy"


@dataclass(frozen=True)
class SampleConfig:
    """Intra-identity variation. Ranges are uniform; angles in degrees, shifts in ROI sides."""

    size: int = 128
    major_jitter: float = 0.01    # tolerance change range of the major lines (unit square)
    minor_jitter: float = 0.015   # ... of the minor lines
    rot_deg: float = 8.0
    scale: float = 0.06
    shift: float = 0.05
    gain: tuple = (0.8, 1.2)
    offset: tuple = (-0.06, 0.06)
    gradient: float = 0.2         # peak amplitude of a linear illumination ramp
    mounds: float = 0.2           # peak amplitude of each broad shading blob
    blur_sigma: tuple = (0.3, 1.2)
    noise_sigma: tuple = (0.002, 0.01)
    texture: float = 0.03        # relative amplitude of the identity's fine skin texture
    crease_depth: tuple = (0.15, 0.3)   # relative darkening at the deepest crease
    candidate: CandidateConfig = field(default_factory=CandidateConfig)


@dataclass(frozen=True)
class Identity:
    """A synthetic palm: its candidate (geometry), label and fine-texture seed."""

    candidate: Candidate
    label: str
    texture_seed: int


def new_identity(rng: np.random.Generator, hand: str | None = None,
                 config: SampleConfig = SampleConfig()) -> Identity:
    hand = hand or ("left" if rng.random() < 0.5 else "right")
    cand = sample_candidate(rng, hand, config.candidate)
    return Identity(cand, strict_label(cand), int(rng.integers(2 ** 31)))


def skin_texture(seed: int, size: int = 128) -> np.ndarray:
    """Zero-mean fine skin texture of one identity, unit standard deviation, stable for a seed
    (it belongs to the palm): the cross-hatched furrows of palm skin as white noise through two
    oriented band-pass (Gabor) filters about 70 degrees apart, plus fine pores."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal((size, size)).astype(np.float32)
    theta = rng.uniform(0, np.pi)
    out = np.zeros((size, size), np.float32)
    for th, w in ((theta, 1.0), (theta + np.deg2rad(rng.uniform(55, 85)), rng.uniform(0.5, 0.9))):
        k = cv2.getGaborKernel((11, 11), 1.6, th, rng.uniform(4.0, 6.0), 0.6, 0)
        r = cv2.filter2D(n, cv2.CV_32F, k - k.mean())
        out += w * r / (r.std() + 1e-6)
    pores = cv2.GaussianBlur(n, (0, 0), 0.7) - cv2.GaussianBlur(n, (0, 0), 1.6)
    out += 0.5 * pores / (pores.std() + 1e-6)
    return ((out - out.mean()) / (out.std() + 1e-6)).astype(np.float32)


def _pose_light(img: np.ndarray, rng: np.random.Generator, c: SampleConfig) -> np.ndarray:
    s = img.shape[0]
    ang = rng.uniform(-c.rot_deg, c.rot_deg)
    sc = 1 + rng.uniform(-c.scale, c.scale)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), ang, sc)
    m[:, 2] += rng.uniform(-c.shift, c.shift, 2) * s
    out = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    th = rng.uniform(0, 2 * np.pi)
    ramp = 1 + rng.uniform(0, c.gradient) * 2 * (np.cos(th) * xx + np.sin(th) * yy)
    for _ in range(3):  # broad shading of the palm's mounds and hollow
        cy, cx = rng.uniform(-0.6, 0.6, 2)
        w = rng.uniform(0.25, 0.5)
        ramp += rng.uniform(-c.mounds, c.mounds) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)
                                                          / (2 * w * w))
    out = out * ramp * rng.uniform(*c.gain) + rng.uniform(*c.offset)
    sig = rng.uniform(*c.blur_sigma)
    if sig > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sig)
    out = out + rng.normal(0, rng.uniform(*c.noise_sigma), out.shape).astype(np.float32)
    return np.clip(out, 0, 1)


class PalmSynthesizer:
    """Renders samples of synthetic identities with the shipped ONNX generation model.

    ``conditions``: (N,64) real-palm conditions; by default the shipped style bank (the
    encoder's conditions of the real training palms, one per palm), or the encoder applied to
    real images given with :meth:`conditions_from_images` (Mode B with any real set).
    """

    def __init__(self, models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 config: SampleConfig = SampleConfig(), conditions: np.ndarray | None = None):
        self.models_dir = Path(models_dir)
        self.config = config
        self.generator = Model(GENERATOR, self.models_dir, threads)
        self.threads = threads
        if conditions is None:
            conditions = np.load(io.BytesIO(verified_bytes(STYLE_BANK, self.models_dir)[0])
                                 ).astype(np.float32)
        self.conditions = np.asarray(conditions, np.float32)

    def conditions_from_images(self, images: np.ndarray) -> np.ndarray:
        """Encoder conditions of real grey ROIs (N,H,W) uint8."""
        enc = Model(ENCODER, self.models_dir, self.threads)
        x = np.stack([cv2.resize(im, (128, 128), interpolation=cv2.INTER_AREA)
                      for im in images]).astype(np.float32)[:, None] / 255.0
        return np.concatenate([enc(real=x[k:k + 64])["condition"] for k in range(0, len(x), 64)])

    def candidate_maps(self, identity: Identity, rng: np.random.Generator, n: int) -> np.ndarray:
        c = self.config
        return np.stack([render_candidate(jitter_candidate(identity.candidate, rng, c.major_jitter,
                                                           c.minor_jitter, c.candidate), c.size)
                         for _ in range(n)])

    def generate(self, maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Generator output for crease maps (N,128,128), a random real condition each."""
        cond = self.conditions[rng.integers(len(self.conditions), size=len(maps))]
        return self.generator(candidate=maps[:, None], condition=cond)["palm"][:, 0]

    def surface(self, identity: Identity, palms: np.ndarray, maps: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """Generator outputs (N,128,128) in [0,1] finished as skin: a light blur against the
        transposed convolutions' checkerboard, the creases of the candidate maps deepened
        (the generator alone renders them with too little contrast after CPU-budget training),
        and the identity's fine skin texture."""
        c = self.config
        tex = skin_texture(identity.texture_seed, palms.shape[-1]) * c.texture
        out = []
        for p, m in zip(palms, maps):
            p = cv2.GaussianBlur(p, (0, 0), 0.8)
            depth = rng.uniform(*c.crease_depth)
            p = p * (1 - depth * cv2.GaussianBlur(m, (0, 0), 0.7))
            out.append(np.clip(p * (1 + tex), 0, 1))
        return np.stack(out).astype(np.float32)

    def palms(self, identity: Identity, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` unposed float (n,128,128) palm surfaces of one identity, in [0,1]."""
        maps = self.candidate_maps(identity, rng, n)
        return self.surface(identity, self.generate(maps, rng), maps, rng)

    def samples(self, identity: Identity, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uint8 (n,128,128) ROI samples of one identity: palms plus pose, light, blur
        and noise."""
        out = [_pose_light(p, rng, self.config) for p in self.palms(identity, n, rng)]
        return (np.stack(out) * 255 + 0.5).astype(np.uint8)
