"""The MLflow model the export stage logs (MLflow "models from code"): an export folder's
full-integer int8 `.tflite` run by LiteRT, the files of all four variants attached.

Self-contained on purpose (numpy and ai-edge-litert only, no cnnzoo or TensorFlow), so
`mlflow.pyfunc.load_model("models:/cnnzoo-mobile@mobile")` works wherever LiteRT installs; the
model carries serving_input.py beside it (`code_paths`). Input: images of any size, grey or
colour, uint8 or float, pre-processed as model.json says (serving_input.py, as `cnnzoo predict`
does); output: class probabilities (N, classes), columns named by class, calibrated by model.json's
temperature (softmax(logits / T)). Input that is not images
fails with one line naming the shape given and the shapes accepted.
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
        if scale:  # int8, or int16 when the export repaired int8 with 16-bit activations
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.inp["dtype"])
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        logits = self.interp.get_tensor(self.out["index"])[0].astype(np.float32)
        scale, zero = self.out["quantization"]
        if scale:
            logits = (logits - zero) * scale
        logits = logits / self.card.get("temperature", 1.0)  # absent from older cards
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        try:
            from serving_input import to_model_input  # the copy the model carries
        except ImportError:
            from cnnzoo.data.serving_input import to_model_input
        x = to_model_input(model_input, self.card)
        return pd.DataFrame(np.stack([self._one(img) for img in x]), columns=self.card["classes"])


# MLflow runs this file as the model's code (under a module name of its own); imported as the
# package's module, for its path (cnnzoo.tracking.client), it sets nothing.
if __name__ != "cnnzoo.deploy.litert_pyfunc":
    mlflow.models.set_model(LiteRTClassifier())
