"""Architectures by name. Importing this package registers every builder."""

from persist.architectures import CATALOG, ArchInfo, arch_info, family_of, study_architectures
from persist.models import signal1d, small  # noqa: F401  (registers mlp, cnn and the 1-D families)
from persist.models.registry import (
    count_parameters,
    create_model,
    default_shape,
    get_classifier,
    list_models,
    measured_parameters,
    register_model,
    set_classifier,
)

__all__ = ["CATALOG", "ArchInfo", "arch_info", "count_parameters", "create_model", "default_shape", "family_of",
           "get_classifier", "list_models", "measured_parameters", "register_model", "set_classifier",
           "study_architectures"]
from persist.models import zoo  # noqa: E402,F401  (registers the PERSIST study architectures)
