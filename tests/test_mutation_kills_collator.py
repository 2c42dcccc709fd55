"""Collator and tokenisation behaviour the older tests left open (found by mutation testing,
``benchmarks/mutation.sh``): a tokenizer whose pad id is not 0, a non-zero token-type pad, both
padding sides with ``pad_to_multiple_of`` on text and descriptions, every error in both directions,
and the default lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import BertTokenizer

from mmaffect.datasets_scripts import LGSRRDataCollator, tokenize_for_lgsrr
from mmaffect.datasets_scripts.collator import FALLBACK_MAX_LENGTH

WORDS = "the man woman is smiling talking walking hello world hi no way a box of ok".split()


@pytest.fixture
def shifted_tokenizer():
    """[PAD] is id 3 here, so any padding with 0 (or the mask value) shows."""
    vocab = {token: i for i, token in enumerate(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"] + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab)
    assert tokenizer.pad_token_id == 3
    return tokenizer


class PadSeven:
    """A tokenizer stand-in: pad id 7, token-type pad 2, padding side chosen by the test."""

    pad_token_id = 7
    pad_token_type_id = 2

    def __init__(self, side="right"):
        self.padding_side = side


def rows():
    return [
        {"input_ids": [1, 5, 6], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0],
         "aspect_input_ids": [[1, 9], [1, 9, 9, 9, 9]], "aspect_attention_mask": [[1, 1], [1, 1, 1, 1, 1]],
         "label": 2, "aspect_ranks": None},
        {"input_ids": np.array([1, 5, 6, 8, 8]), "attention_mask": (1, 1, 1, 1, 1), "token_type_ids": [1, 1, 1, 1, 1],
         "aspect_input_ids": [[1], [1, 4]], "aspect_attention_mask": [[1], [1, 1]],
         "label": np.int64(0), "aspect_ranks": np.array([1, 0])},
    ]


def test_right_padding_uses_the_tokenizers_pad_ids():
    batch = LGSRRDataCollator(PadSeven())(rows())
    assert batch["input_ids"].tolist() == [[1, 5, 6, 7, 7], [1, 5, 6, 8, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 2, 2], [1] * 5]
    assert batch["aspect_input_ids"].tolist() == [[[1, 9, 7, 7, 7], [1, 9, 9, 9, 9]], [[1, 7, 7, 7, 7], [1, 4, 7, 7, 7]]]
    assert batch["aspect_attention_mask"].tolist() == [[[1, 1, 0, 0, 0], [1] * 5], [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0]]]
    assert batch["labels"].tolist() == [2, 0] and batch["labels"].dtype == torch.long
    assert batch["aspect_ranks"].tolist() == [[-1, -1], [1, 0]]
    assert all(value.dtype == torch.long for value in batch.values())


def test_left_padding_and_multiple_of_round_text_and_descriptions():
    batch = LGSRRDataCollator(PadSeven("left"), pad_to_multiple_of=4)(rows())
    assert batch["input_ids"].tolist() == [[7, 7, 7, 7, 7, 1, 5, 6], [7, 7, 7, 1, 5, 6, 8, 8]]
    assert batch["attention_mask"].tolist() == [[0] * 5 + [1] * 3, [0] * 3 + [1] * 5]
    assert batch["token_type_ids"].tolist()[0] == [2] * 5 + [0] * 3
    assert batch["aspect_input_ids"].shape == (2, 2, 8)
    assert batch["aspect_input_ids"][1, 1].tolist() == [7] * 6 + [1, 4]
    assert batch["aspect_attention_mask"][1, 1].tolist() == [0] * 6 + [1, 1]
    # a length already on the multiple is kept
    exact = LGSRRDataCollator(PadSeven(), pad_to_multiple_of=5)(rows())
    assert exact["input_ids"].shape == (2, 5) and exact["aspect_input_ids"].shape == (2, 2, 5)
    # a tokenizer without padding_side pads on the right
    class NoSide:
        pad_token_id = 7
    assert LGSRRDataCollator(NoSide())(rows())["input_ids"][0].tolist() == [1, 5, 6, 7, 7]


def test_labels_column_and_rank_only_batches():
    plain = [{"input_ids": [1, 2], "attention_mask": [1, 1], "labels": "1", "aspect_ranks": [2, 0, 1]},
             {"input_ids": [1], "attention_mask": [1], "labels": 0, "aspect_ranks": None}]
    batch = LGSRRDataCollator(PadSeven())(plain)
    assert batch["labels"].tolist() == [1, 0]
    assert batch["aspect_ranks"].tolist() == [[2, 0, 1], [-1, -1, -1]]  # K from the first ranked row
    assert "token_type_ids" not in batch and "aspect_input_ids" not in batch
    no_ranks = LGSRRDataCollator(PadSeven())([{"input_ids": [1], "attention_mask": [1]}])
    assert set(no_ranks) == {"input_ids", "attention_mask"}
    with pytest.raises(ValueError, match=r"^batch row 1: aspect_ranks \[1, 0, 2\] has 3 entries, expected 2$"):
        LGSRRDataCollator(PadSeven())([{"input_ids": [1], "attention_mask": [1], "aspect_ranks": [2, 0]},
                                       {"input_ids": [1], "attention_mask": [1], "aspect_ranks": [1, 0, 2]}])
    with pytest.raises(ValueError, match=r"^batch row 0: aspect_ranks \[0\] has 1 entries, expected 2$"):
        rows_ = rows()  # K = 2 from the descriptions, not from the ranks
        rows_[0]["aspect_ranks"] = [0]
        LGSRRDataCollator(PadSeven())(rows_)


def test_collator_errors_name_rows_and_keys():
    class NoPad:
        pad_token_id = None
    with pytest.raises(ValueError, match="^tokenizer NoPad has no pad token; set tokenizer.pad_token first$"):
        LGSRRDataCollator(NoPad())
    with pytest.raises(ValueError, match="^LGSRRDataCollator got an empty batch$"):
        LGSRRDataCollator(PadSeven())([])
    many = [{"input_ids": [1]} for _ in range(7)]
    with pytest.raises(KeyError, match=r"batch rows \[0, 1, 2, 3, 4\] have no 'attention_mask'; run tokenize_for_lgsrr first"):
        LGSRRDataCollator(PadSeven())(many)
    with pytest.raises(KeyError, match=r"batch rows \[1\] have no 'input_ids'"):
        LGSRRDataCollator(PadSeven())([{"input_ids": [1], "attention_mask": [1]}, {"attention_mask": [1]}])
    uneven = rows()
    uneven[0]["aspect_input_ids"] = uneven[0]["aspect_input_ids"] + [[1]]
    uneven[0]["aspect_attention_mask"] = uneven[0]["aspect_attention_mask"] + [[1]]
    with pytest.raises(ValueError, match=r"^rows of the batch have different numbers of aspects: \[2, 3\]$"):
        LGSRRDataCollator(PadSeven())(uneven)


def dataset(name="mintrec2", texts=("hello world", "no way"), aspects=(("the man", "ok"), ("a box of", "hi"))):
    ds = Dataset.from_dict({"text": list(texts), "aspects": [list(a) for a in aspects], "label": [0, 1]})
    ds.info.dataset_name = name
    return ds


def test_tokenize_with_a_shifted_pad_id_then_collate(shifted_tokenizer):
    out = tokenize_for_lgsrr(dataset(), shifted_tokenizer)
    batch = LGSRRDataCollator(shifted_tokenizer)([out[0], out[1]])
    assert batch["aspect_input_ids"][1, 1].tolist()[-1] == 3  # 'hi' padded with [PAD] = 3
    assert (batch["aspect_attention_mask"] == (batch["aspect_input_ids"] != 3)).all()
    assert (batch["attention_mask"] == (batch["input_ids"] != 3)).all()


def test_default_lengths_paper_tokenizer_and_fallback(shifted_tokenizer):
    long_text = " ".join(["hello"] * 80)
    texts, aspects = (long_text, "hi"), ((long_text, "ok"), ("a", "b"))
    paper = tokenize_for_lgsrr(dataset("iemocap-da", texts, aspects), shifted_tokenizer)
    assert len(paper[0]["input_ids"]) == 70 and len(paper[0]["aspect_input_ids"][0]) == 50
    shifted_tokenizer.model_max_length = 40
    own = tokenize_for_lgsrr(dataset("custom", texts, aspects), shifted_tokenizer)
    assert len(own[0]["input_ids"]) == 40 and len(own[0]["aspect_input_ids"][0]) == 40
    shifted_tokenizer.model_max_length = int(1e30)  # transformers' "no limit" sentinel
    longer = " ".join(["hello"] * (FALLBACK_MAX_LENGTH + 10))
    fallback = tokenize_for_lgsrr(dataset("custom", (longer, "hi"), aspects), shifted_tokenizer)
    assert len(fallback[0]["input_ids"]) == FALLBACK_MAX_LENGTH
    given = tokenize_for_lgsrr(dataset("mintrec2", texts, aspects), shifted_tokenizer, 10, 12)
    assert len(given[0]["input_ids"]) == 10 and len(given[0]["aspect_input_ids"][0]) == 12


def test_dataset_dict_keeps_every_argument_per_split(shifted_tokenizer):
    ds = Dataset.from_dict({"utterance": ["hello world hello world"], "descs": [["the man is smiling", "ok"]]})
    out = tokenize_for_lgsrr(DatasetDict({"train": ds, "test": ds}), shifted_tokenizer, 4, 3,
                             text_column="utterance", aspects_column="descs", batch_size=1)
    for split in ("train", "test"):
        assert len(out[split][0]["input_ids"]) == 4 and len(out[split][0]["aspect_input_ids"][0]) == 3
        assert out[split][0]["aspect_input_ids"][1] == shifted_tokenizer("ok")["input_ids"]


def test_tokenize_errors_name_the_column(shifted_tokenizer):
    with pytest.raises(ValueError, match=r"^tokenize_for_lgsrr needs column 'text'; the dataset has \['aspects'\]$"):
        tokenize_for_lgsrr(Dataset.from_dict({"aspects": [["a"]]}), shifted_tokenizer)
    with pytest.raises(ValueError, match=r"^tokenize_for_lgsrr needs column 'aspects' \(load the benchmark with descriptions_dir=\.\.\.\); the dataset has \['text'\]$"):
        tokenize_for_lgsrr(Dataset.from_dict({"text": ["a"]}), shifted_tokenizer)
    uneven = Dataset.from_dict({"text": ["a", "b"], "aspects": [["x", "y"], ["x"]]})
    with pytest.raises(ValueError, match=r"rows of column 'aspects' have different numbers of aspects: \[1, 2\]"):
        tokenize_for_lgsrr(uneven, shifted_tokenizer)
