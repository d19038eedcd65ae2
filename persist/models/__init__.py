"""Architectures by name. Importing this package registers every builder."""

from persist.models import small  # noqa: F401  (registers mlp, cnn)
from persist.models.registry import (
    count_parameters,
    create_model,
    get_classifier,
    list_models,
    register_model,
    set_classifier,
)

__all__ = ["count_parameters", "create_model", "get_classifier", "list_models", "register_model", "set_classifier"]
from persist.models import zoo  # noqa: E402,F401  (registers the PERSIST study architectures)
