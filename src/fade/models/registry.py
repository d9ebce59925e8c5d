"""Models by name: ``create_model(name, upsampler="fade", **options)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["create_model", "list_models", "register_model"]

ModelFactory = Callable[..., nn.Module]
_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register ``factory(upsampler, **options) -> nn.Module`` under ``name``.

    A model that takes images only from some size on says so with an int attribute
    ``smallest_input`` (the least H and W); the trainer then refuses smaller presets before training.
    """

    def register(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return register


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_MODELS)


def create_model(name: str, upsampler: str = "fade", **options) -> nn.Module:
    """Build model ``name`` with every upsampling step done by upsampler ``upsampler``.

    Args:
        name: one of :func:`list_models`.
        upsampler: one of :func:`fade.list_upsamplers`.
        **options: model keyword arguments, e.g. ``num_classes`` for the segmentation models,
            ``upsampler_options`` (passed to every upsampler), ``device``, ``dtype``.

    Raises:
        KeyError: for an unknown model name, listing the valid ones (and likewise for an unknown
            upsampler name).
    """
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")
    return _MODELS[name](upsampler, **options)
