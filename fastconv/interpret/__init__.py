"""Interpretability tools on the layer graph: attribution maps, adversarial examples, transforms.

Attribution (Captum-shaped functions; each returns an :class:`Attribution` whose ``attr`` has
the input's shape and whose ``map`` is (N, H, W)): :func:`saliency`, :func:`smoothgrad`,
:func:`input_x_gradient`, :func:`integrated_gradients`, :func:`grad_cam`.

Adversarial examples under an L-infinity budget in the units of x and ``bounds`` (pixel levels
for 0..255 images): :func:`fgsm`, :func:`pgd`, :func:`eot_pgd` (Expectation Over
Transformation), :func:`eot_evaluate`, :class:`AttackResult`, :func:`eps_from_fraction`.

Random differentiable transformations (Lucid's, and EOT's distribution): :mod:`.transforms`.

Example:
    >>> from fastconv.interpret import saliency, pgd, transforms as T
"""
from . import transforms
from .adversarial import AttackResult, eot_evaluate, eot_pgd, eps_from_fraction, fgsm, pgd
from .saliency import (Attribution, grad_cam, input_x_gradient, integrated_gradients, reduce_channels, saliency,
                       smoothgrad)

__all__ = ["saliency", "smoothgrad", "input_x_gradient", "integrated_gradients", "grad_cam", "Attribution",
           "reduce_channels", "fgsm", "pgd", "eot_pgd", "eot_evaluate", "AttackResult", "eps_from_fraction",
           "transforms"]

# --- feature visualization (objectives.py, param.py, render.py): exports go below this line ---
