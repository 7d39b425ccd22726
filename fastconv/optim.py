"""Optimizers (SGD with momentum and Nesterov, Adam) and learning-rate schedules, as PyTorch's.

An optimizer holds a list of Parameters and updates their ``.data`` in place from their
``.grad`` in :meth:`step`; parameters without a gradient are skipped. A schedule changes the
optimizer's ``lr`` once per :meth:`step` (call it once per epoch or per batch, as you define
the period).

Example:
    >>> import numpy as np
    >>> from fastconv.autograd import Tensor
    >>> w = Tensor(np.array([3.0]), requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> for _ in range(50):
    ...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
    >>> bool(abs(w.data[0]) < 1e-4)
    True
"""
from __future__ import annotations

import math

from fastconv.autograd import no_grad
from fastconv.backends import get_xp


class Optimizer:
    """Base class: ``params`` (an iterable of Parameters), ``lr``, ``zero_grad()``, ``step()``."""

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = lr
        self.state = [dict() for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        with no_grad():
            for p, st in zip(self.params, self.state):
                if p.grad is not None:
                    self._update(p, p.grad, st)

    def _update(self, p, g, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    PyTorch's formulation: ``g += weight_decay * p``; ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step); the step direction is ``g + momentum * buf`` with Nesterov,
    else ``buf``; ``p -= lr * direction``.

    Reference: Sutskever et al., "On the importance of initialization and momentum in deep learning", 2013.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(Optimizer):
    """Adam: bias-corrected running means of the gradient and of its square.

    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``; ``weight_decay`` adds ``weight_decay * p`` to
    the gradient (L2, as torch.optim.Adam; not AdamW's decoupled decay).

    Reference: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def _update(self, p, g, state):
        xp = get_xp(p.data)
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p.data
        if not state:
            state.update(t=0, m=xp.zeros_like(p.data), v=xp.zeros_like(p.data))
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = xp.sqrt(v / (1 - b2 ** t)) + self.eps
        p.data -= ((self.lr / (1 - b1 ** t)) * m / denom).astype(p.data.dtype, copy=False)


class LRScheduler:
    """Base class: ``step()`` advances one period and sets ``optimizer.lr = lr_at(period)``."""

    def __init__(self, optimizer: Optimizer):
        self.optimizer, self.base_lr, self.last_epoch = optimizer, optimizer.lr, 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)
        return self.optimizer.lr


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` periods."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` periods, then constant.

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``. Up to ``T_max`` the
    rates equal PyTorch's; after it, PyTorch's rise again along the cosine, these stay at ``eta_min``.

    Reference: Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer)
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        t = min(epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
