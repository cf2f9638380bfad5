"""cnnzoo: classic CNNs trained, compared and shipped to TFLite through one DVC pipeline."""

from cnnzoo.logs import quiet_native_logs

# Before any submodule imports TensorFlow (its C++ runtime reads the log level once, at load).
quiet_native_logs()

__version__ = "0.1.0"
