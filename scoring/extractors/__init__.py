"""Extractors turn posts (with their parent's text) into :class:`polarwatch.records.Labels`."""

from scoring.extractors.base import Extractor, PostPair
from scoring.extractors.registry import available_backends, get_extractor

__all__ = ["Extractor", "PostPair", "available_backends", "get_extractor"]
