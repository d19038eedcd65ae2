"""The PERSIST study's 19 architectures; importing this module registers them all."""

from persist.models import mixer, resnet, torchvision_zoo, vit, wide_resnet  # noqa: F401  (registration)
