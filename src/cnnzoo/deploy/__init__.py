"""Deployment: TFLite conversion, Keras/LiteRT parity, the serving contract, predict, the MLflow
pyfunc, model sizes."""
