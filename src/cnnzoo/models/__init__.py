"""Model zoo: importing this package registers every family."""

from cnnzoo.models import (  # noqa: F401  (registration side effects)
    alexnet,
    densenet,
    googlenet,
    lecture,
    lenet,
    mobilenet,
    nin,
    resnet,
    unet,
    vgg,
    yolo,
)
from cnnzoo.models.registry import (
    FEATURES,
    HEAD,
    TASKS,
    create_model,
    get_entry,
    list_models,
    model_hparams,
    register_model,
)

__all__ = ["FEATURES", "HEAD", "TASKS", "create_model", "get_entry", "list_models", "model_hparams",
           "register_model"]
