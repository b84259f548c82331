"""Model zoo: every architecture the benchmark can prune, registered by name.

A model factory takes ``(num_classes, in_channels, image_size, **options)`` and returns an
``nn.Module`` with an ``unprunable`` attribute: the names of layers whose output channels are
fixed (the classifier). Modules listed in ``CUSTOMIZED_PRUNERS`` are opaque to Torch-Pruning and
every channel group that touches one is left unpruned.
"""

# Importing the zoo modules registers their models.
from prunebench.models import lenet, mobilenet, resnet_cifar, resnet_torchvision, shufflenet, vgg  # noqa: E402,F401
from prunebench.models.registry import CUSTOMIZED_PRUNERS, MODELS, build_model, register_model

__all__ = ["CUSTOMIZED_PRUNERS", "MODELS", "build_model", "register_model"]
