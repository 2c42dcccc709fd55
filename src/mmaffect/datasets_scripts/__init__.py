"""Benchmarks as 🤗 datasets: loaders for MIntRec2.0, IEMOCAP-DA, MIntRec and MELD (with the LGSRR
descriptions and rankings), the LGSRR tokenisation and data collator, and ``mmaffect data-stats``.

    >>> from mmaffect.datasets_scripts import load_benchmark, tokenize_for_lgsrr, LGSRRDataCollator
    >>> ds = load_benchmark("mintrec2", "data_text/MIntRec2.0", descriptions_dir="data_desc/mintrec2.0",
    ...                     ranks_file="data_rank/rank_mintrec2_train.tsv")
    >>> ds = tokenize_for_lgsrr(ds, tokenizer)
    >>> loader = DataLoader(ds["train"], batch_size=32, collate_fn=LGSRRDataCollator(tokenizer))
"""

from mmaffect._lazy import lazy_attributes

# Imported on first use: the label lists (.labels) and the media helpers (.media) stay importable without
# the datasets stack, which semantic extraction does not need.
_EXPORTS = {
    "BENCHMARKS": "benchmarks",
    "LABELS": "benchmarks",
    "get_benchmark": "benchmarks",
    "load_benchmark": "benchmarks",
    "MissingMediaWarning": "media",
    "LGSRRDataCollator": "collator",
    "tokenize_for_lgsrr": "collator",
    "ASPECT_RELEASE_NAMES": "labels",
    "ASPECTS": "labels",
    "IEMOCAP_DA_ACTS": "labels",
    "IEMOCAP_DA_CODES": "labels",
    "MELD_EMOTIONS": "labels",
    "MELD_SENTIMENTS": "labels",
    "MINTREC2_INTENTS": "labels",
    "MINTREC_INTENTS": "labels",
    "read_descriptions": "lgsrr_extras",
    "read_ranks": "lgsrr_extras",
    "BadRowsWarning": "reading",
    "BenchmarkFormatError": "reading",
    "UnmatchedRowsWarning": "reading",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, globals())
