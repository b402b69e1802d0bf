"""The numeric constants the ops' references and both targets' kernels share: one definition each.

Numba compiles a helper's globals into its machine code and keys the CPU helpers' cache by the file that
defines them, so a change here must come with a change to ``lower/scalar_helpers.py`` (its cache is rebuilt
when that file changes).
"""

import math

LOG_FLOOR = -100.0  # log(p) is clamped here, as PyTorch's BCELoss does, so log(0) never reaches the loss
EPS = 1e-12  # the smallest p(1 - p) a probability's gradient divides by
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)  # erf'(x) = 2/sqrt(pi) e^(-x^2)
GELU_SIGMOID_SCALE = 1.702  # gelu(approximate=true): x * sigmoid(1.702 x)
# selu (Klambauer et al. 2017): the fixed point of self-normalizing networks, as PyTorch and JAX define them
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
HARD_SIGMOID_SLOPE = 1.0 / 6.0  # hard_sigmoid(x) = clip(x / 6 + 1/2, 0, 1), PyTorch's relu6(x + 3) / 6
