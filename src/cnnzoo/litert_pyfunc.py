"""The MLflow model the export stage logs (MLflow "models from code"): an export folder's
full-integer int8 `.tflite` run by LiteRT, the files of all four variants attached.

Self-contained on purpose (numpy and ai-edge-litert only, no cnnzoo or TensorFlow), so
`mlflow.pyfunc.load_model("models:/cnnzoo-mobile@mobile")` works wherever LiteRT installs.
Input: float32 images (N, H, W, C) in [0, 1], pre-processed as model.json says; output: class
probabilities (N, classes), columns named by class.
"""

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class LiteRTClassifier(PythonModel):
    variant = "int8"

    def load_context(self, context):
        from ai_edge_litert.interpreter import Interpreter

        with open(context.artifacts["model.json"]) as f:
            self.card = json.load(f)
        self.interp = Interpreter(model_path=context.artifacts[self.variant])
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def _one(self, img: np.ndarray) -> np.ndarray:
        x = img[None].astype(np.float32)
        scale, zero = self.inp["quantization"]
        if scale:
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        logits = self.interp.get_tensor(self.out["index"])[0].astype(np.float32)
        scale, zero = self.out["quantization"]
        if scale:
            logits = (logits - zero) * scale
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        x = np.asarray(model_input, dtype=np.float32)
        x = x.reshape(-1, *self.card["input"]["shape"])
        return pd.DataFrame(np.stack([self._one(img) for img in x]), columns=self.card["classes"])


mlflow.models.set_model(LiteRTClassifier())
