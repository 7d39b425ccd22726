"""Interpretability tools on the layer graph: attribution maps, adversarial examples, transforms.

Attribution (Captum-shaped functions; each returns an :class:`Attribution` whose ``attr`` has
the input's shape and whose ``map`` is (N, H, W)): :func:`saliency`, :func:`guided_backprop`,
:func:`smoothgrad`, :func:`input_x_gradient`, :func:`integrated_gradients`, :func:`grad_cam`,
:func:`guided_grad_cam`, :func:`occlusion`.

Adversarial examples under an L-infinity budget in the units of x and ``bounds`` (pixel levels
for 0..255 images): :func:`fgsm`, :func:`pgd`, :func:`eot_pgd` (Expectation Over
Transformation), :func:`eot_evaluate`, :class:`AttackResult`, :func:`eps_from_fraction`.

Random differentiable transformations (Lucid's, and EOT's distribution): :mod:`.transforms`.

Example:
    >>> from fastconv.interpret import saliency, pgd, transforms as T
"""
from . import transforms
from .adversarial import AttackResult, eot_evaluate, eot_pgd, eps_from_fraction, fgsm, pgd
from .saliency import (Attribution, grad_cam, guided_backprop, guided_grad_cam, input_x_gradient,
                       integrated_gradients, occlusion, reduce_channels, saliency, smoothgrad)

__all__ = ["saliency", "guided_backprop", "smoothgrad", "input_x_gradient", "integrated_gradients", "grad_cam",
           "guided_grad_cam", "occlusion", "Attribution",
           "reduce_channels", "fgsm", "pgd", "eot_pgd", "eot_evaluate", "AttackResult", "eps_from_fraction",
           "transforms"]

# feature visualization and the course's figures
from . import figures, objectives, param, regularizers  # noqa: E402
from .figures import (checkerboard_figure, checkerboard_generated, conv_matrix_example,  # noqa: E402
                      conv_matrix_figure, conv_stack, feature_maps, features_only, first_layer_filters,
                      overlap_figure, overlap_map, receptive_field_figure, smoothing_1d, smoothing_1d_figure,
                      strided_conv_gradient)
from .objectives import Objective, channel, class_logit, direction, diversity, neuron  # noqa: E402
from .param import fft_image, pixel_image  # noqa: E402
from .regularizers import (clip_pixels, gaussian_blur, high_frequency_share, l2_decay,  # noqa: E402
                           laplacian_pyramid_gradient, linf_penalty, lp_penalty, percentile_clip)
from .render import VisResult, standard_transforms, visualize  # noqa: E402

__all__ += ["figures", "objectives", "param", "regularizers", "Objective", "channel", "class_logit", "direction",
            "diversity", "neuron", "fft_image", "pixel_image", "clip_pixels", "gaussian_blur", "high_frequency_share",
            "l2_decay", "laplacian_pyramid_gradient", "linf_penalty", "lp_penalty", "percentile_clip", "VisResult",
            "standard_transforms", "visualize", "checkerboard_figure", "checkerboard_generated", "conv_matrix_example",
            "conv_matrix_figure", "conv_stack", "feature_maps", "features_only", "first_layer_filters",
            "overlap_figure", "overlap_map", "receptive_field_figure", "smoothing_1d", "smoothing_1d_figure",
            "strided_conv_gradient"]
