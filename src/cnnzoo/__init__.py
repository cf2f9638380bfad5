"""cnnzoo: classic CNNs trained, compared and shipped to TFLite through one DVC pipeline."""

__version__ = "0.1.0"
