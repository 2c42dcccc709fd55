"""LLM-guided semantic extraction: the three CoT steps of LGSRR (paper §3.1, App. C).

1. ``discover`` - Template1 over sampled (text, video) pairs; count the perspectives, keep top-K.
2. ``describe`` - a video LLM describes each aspect of every sample (Template2).
3. ``rank`` - an LLM ranks the aspects given intent, text and descriptions (Template3).

Every LLM reply goes to an append-only cache first, so runs resume; the outputs are the LGSRR
release files that ``mmaffect.load_benchmark(..., descriptions_dir=, ranks_file=)`` reads.
Command line: ``mmaffect extract {discover,describe,rank,all}``; user guide:
``docs/semantic_extraction.md``. torch/transformers are imported only by the local backends.
"""

from .aspects import DEFAULT_ASPECTS, KNOWN_ASPECTS, AspectMatcher, AspectSpec
from .backends import (
    BackendError,
    BackendFatalError,
    ChatBackend,
    OpenAICompatibleBackend,
    TransformersChatBackend,
    TransformersVideoBackend,
    build_backend,
)
from .cache import ResponseCache
from .config import ExtractionConfig, load_config
from .describe import DescribeConfig, split_sections
from .describer import ClipDescriber
from .discover import DiscoverConfig, parse_perspectives
from .pipeline import Extraction, run_step
from .rank import RankConfig, RankParse, parse_ranking
from .runner import CachedChat
from .samples import LAYOUTS, DatasetLayout, Sample, read_samples
from .video import VideoDecodeError, sample_frames, uniform_indices

__all__ = [
    "DEFAULT_ASPECTS",
    "KNOWN_ASPECTS",
    "LAYOUTS",
    "AspectMatcher",
    "AspectSpec",
    "BackendError",
    "BackendFatalError",
    "CachedChat",
    "ChatBackend",
    "ClipDescriber",
    "DatasetLayout",
    "DescribeConfig",
    "DiscoverConfig",
    "Extraction",
    "ExtractionConfig",
    "OpenAICompatibleBackend",
    "RankConfig",
    "RankParse",
    "ResponseCache",
    "Sample",
    "TransformersChatBackend",
    "TransformersVideoBackend",
    "VideoDecodeError",
    "build_backend",
    "load_config",
    "parse_perspectives",
    "parse_ranking",
    "read_samples",
    "run_step",
    "sample_frames",
    "split_sections",
    "uniform_indices",
]
