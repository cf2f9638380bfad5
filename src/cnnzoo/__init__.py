"""cnnzoo: classic CNNs trained, compared and shipped to TFLite through one DVC pipeline."""

import os

from cnnzoo.logs import quiet_native_logs

# Before any submodule imports TensorFlow (its C++ runtime reads the log level once, at load).
quiet_native_logs()
# oneDNN's CPU kernels on every x86 host, as on those with AVX-512, where TensorFlow turns them
# on by itself. On an AVX2-only host it does not, and its other kernels cannot back-propagate a
# grouped convolution: pretrain@resnext50_32x4d failed there ("Gradients for grouped
# convolutions are not supported on CPU"). An explicit TF_ENABLE_ONEDNN_OPTS wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
