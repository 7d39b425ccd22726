"""What is timed: the anchor cases, the scaling sweeps, their data, and Lite0's FLOP count.

Cases are those of the project's ANCHORS.md (a1-a3, b, c, d, e, f1, f2, g1, g2, Lite0) plus
four scaling sweeps (batch, spatial size, channels, kernel size).
"""
from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field

import numpy as np

# ============================================================================ cases
@dataclass(frozen=True)
class Case:
    """One convolution (or model) to time. ``kind``: conv, convT, conv1d or lite0."""
    id: str
    kind: str
    N: int = 1
    Ci: int = 1
    Co: int = 1
    H: int = 1
    W: int = 1
    k: int = 1
    s: int = 1
    p: int = 0
    groups: int = 1
    L: int = 0
    grad: bool = False      # forward + gradient w.r.t. input and weight (lite0: input only)
    title: str = ""

    @property
    def out_hw(self):
        if self.kind == "convT":
            return ((self.H - 1) * self.s - 2 * self.p + self.k,) * 2
        return ((self.H + 2 * self.p - self.k) // self.s + 1, (self.W + 2 * self.p - self.k) // self.s + 1)

    @property
    def flops(self) -> float:
        if self.kind == "conv1d":
            f = 2 * (self.L - self.k + 1) * self.k
        elif self.kind == "lite0":
            return lite0_flops(self.H) * self.N * (2 if self.grad else 1)
        elif self.kind == "convT":
            f = 2 * self.N * self.Ci * self.H * self.W * self.Co * self.k * self.k
        else:
            Ho, Wo = self.out_hw
            f = 2 * self.N * self.Co * Ho * Wo * (self.Ci // self.groups) * self.k * self.k
        return f * (3 if self.grad else 1)

    @property
    def multichannel_2d(self):
        return self.kind in ("conv", "convT") and not self.grad

    def tiny(self) -> "Case":
        """A shrunk copy (for smoke tests): same kind and id, a few kilo-FLOP."""
        if self.kind == "lite0":
            return self
        if self.kind == "conv1d":
            return dataclasses.replace(self, L=min(self.L, 2000), k=min(self.k, 11),
                                       title=f"tiny: 1-D L={min(self.L, 2000)} K={min(self.k, 11)}")
        ci, co = min(self.Ci, 6), min(self.Co, 5)
        if self.groups > 1:
            ci = co = min(self.Ci, 6)
        hw = min(self.H, 12)
        return dataclasses.replace(self, N=1, Ci=ci, Co=co, H=hw, W=hw, groups=ci if self.groups > 1 else 1,
                                   title=f"tiny: {self.kind} {self.k}x{self.k} s{self.s} N1 {ci}->{co} {hw}x{hw}")


def _c(id, title, N, Ci, Co, H, k, s=1, p=0, groups=1, kind="conv", grad=False):
    return Case(id, kind, N, Ci, Co, H, H, k, s, p, groups, grad=grad, title=title)


ANCHOR_CASES = [
    _c("a1", "3x3 s1 N8 64->64 56x56", 8, 64, 64, 56, 3, 1, 1),
    _c("a2", "3x3 s1 N1 3->64 224x224", 1, 3, 64, 224, 3, 1, 1),
    _c("a3", "3x3 s1 N8 256->256 14x14", 8, 256, 256, 14, 3, 1, 1),
    _c("b", "7x7 s2 p3 N8 3->64 224->112", 8, 3, 64, 224, 7, 2, 3),
    _c("c", "1x1 N8 256->64 28x28", 8, 256, 64, 28, 1),
    _c("d", "depthwise 3x3 N8 C128 56x56", 8, 128, 128, 56, 3, 1, 1, groups=128),
    _c("e", "transposed 4x4 s2 p1 N8 64->32 28->56", 8, 64, 32, 28, 4, 2, 1, kind="convT"),
    Case("f1", "conv1d", L=1_000_000, k=3, title="1-D L=1e6 K=3 valid"),
    Case("f2", "conv1d", L=100_000, k=101, title="1-D L=1e5 K=101 valid"),
    _c("g1", "a1 forward + grad input + grad weight", 8, 64, 64, 56, 3, 1, 1, grad=True),
    _c("g2", "e forward + grad input + grad weight", 8, 64, 32, 28, 4, 2, 1, kind="convT", grad=True),
    Case("lite0", "lite0", N=1, Ci=3, H=224, W=224, title="EfficientNet-Lite0 N1 224x224 forward"),
    Case("lite0_grad", "lite0", N=1, Ci=3, H=224, W=224, grad=True,
         title="EfficientNet-Lite0 forward + grad to input"),
]


@dataclass
class Sweep:
    """A family of cases that differ in one parameter, for time-versus-size charts."""
    id: str
    title: str
    param: str
    values: list
    quick_values: list
    base: dict = field(default_factory=dict)

    def case(self, v) -> Case:
        kw = dict(self.base)
        if self.param == "C":
            kw.update(Ci=v, Co=v)
        elif self.param == "k":
            kw.update(k=v, p=v // 2)
        elif self.param == "H":
            kw.update(H=v, W=v)
        else:
            kw[self.param] = v
        return Case(f"{self.id}={v}", "conv", title=f"{self.title}, {self.param}={v}", **kw)


SWEEPS = [
    Sweep("batch", "3x3 s1 p1 64->64 28x28", "N", [1, 2, 4, 8, 16, 32, 64], [1, 4, 16, 64],
          dict(Ci=64, Co=64, H=28, W=28, k=3, p=1)),
    Sweep("spatial", "3x3 s1 p1 N1 32->32", "H", [14, 28, 56, 112, 224], [14, 56, 224],
          dict(N=1, Ci=32, Co=32, k=3, p=1)),
    Sweep("channels", "3x3 s1 p1 N1 C->C 28x28", "C", [16, 32, 64, 128, 256, 512], [16, 64, 256, 512],
          dict(N=1, H=28, W=28, k=3, p=1)),
    Sweep("kernel", "k x k s1 'same' N1 16->16 64x64", "k", [1, 3, 5, 7, 11, 15, 21, 31], [1, 3, 7, 15, 31],
          dict(N=1, Ci=16, Co=16, H=64, W=64)),
]


def make_data(case: Case, rng, dtype=np.float32) -> dict:
    """Input, weight and (for gradient cases) output gradient of a case."""
    def randn(*shape):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if case.kind == "conv1d":
        w = np.full((1, 1, 3), 1 / 3, dtype) if case.k == 3 else randn(1, 1, case.k)
        return {"x": randn(1, 1, case.L), "w": w}
    if case.kind == "lite0":
        return {"x": randn(case.N, 3, case.H, case.W)}
    if case.kind == "convT":
        w = randn(case.Ci, case.Co, case.k, case.k)
    else:
        w = randn(case.Co, case.Ci // case.groups, case.k, case.k)
    d = {"x": randn(case.N, case.Ci, case.H, case.W), "w": w}
    if case.grad:
        d["gy"] = randn(case.N, case.Co, *case.out_hw)
    return d


# ---------------------------------------------------------------------------- EfficientNet-Lite0
# (repeats, kernel, first stride, expand ratio, output channels) per stage; see EFFICIENTNET_LITE0.md
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def lite0_blocks():
    """(index, in channels, out channels, kernel, stride, expand ratio) of every MBConv block."""
    cin, i = 32, 0
    for reps, k, s, e, cout in LITE0_STAGES:
        for r in range(reps):
            yield i, cin, cout, k, s if r == 0 else 1, e
            cin, i = cout, i + 1


def lite0_flops(hw=224) -> float:
    """2 x multiply-adds of the convolutions and the classifier for one hw x hw image."""
    size = -(-hw // 2)
    macs = size * size * 32 * 27
    for _, cin, cout, k, s, e in lite0_blocks():
        mid = cin * e
        if e != 1:
            macs += size * size * cin * mid
        size = -(-size // s)
        macs += size * size * mid * k * k + size * size * mid * cout
    macs += size * size * 320 * 1280 + 1280 * 1000
    return 2.0 * macs


def select_cases(patterns=()) -> list:
    """Anchor cases whose id matches one of the fnmatch ``patterns`` (all when empty)."""
    if not patterns:
        return list(ANCHOR_CASES)
    return [c for c in ANCHOR_CASES if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]
