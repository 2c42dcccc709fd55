"""A tiny Nano-EmoX language model pre-trained briefly on a synthetic corpus's text: the starting point of the
learnability test and the curriculum benchmark (a random tiny LM's frozen head leaves phases 1-2 nothing to move).

It trains with the P2E trainer's own loss (:func:`mmaffect.train.p2e.forward_loss`), so it lives above the
trainer; :mod:`mmaffect.train.p2e_synthetic`, which the trainer imports, only writes data.
"""

from __future__ import annotations

import json
from pathlib import Path


def pretrain_tiny_language_model(output, corpus, steps: int = 150, learning_rate: float = 3e-3, batch_size: int = 8,
                                 seed: int = 0) -> Path:
    """A tiny Nano-EmoX whose language model was pre-trained briefly on the corpus's text, saved with its processor.

    A random tiny LM's tied, frozen head caps every logit near 0.9, so frozen-LM phases cannot lower the loss
    (phases 1-2 then learn nothing). The paper's LM is a pre-trained instruct model that already writes the answer
    format; the stand-in: the whole language model (embeddings and head included) trained on the MER prompts of the
    corpus's training split with no media, each answer a label drawn at random from the candidates (so it learns
    the answer format and a uniform prior over the labels, and cannot memorise which subtitle goes with which
    label). Encoders and adapters stay random; the P2E phases then start
    from this folder (``model.init: pretrained``). Idempotent: an existing folder is reused.
    """
    import dataclasses

    import torch

    from mmaffect.datasets_scripts.instruction_data import P2ECollator, read_dataset
    from mmaffect.models.nano_emox import NanoEmoXConfig, NanoEmoXForConditionalGeneration, NanoEmoXProcessor

    from .p2e import forward_loss

    output = Path(output)
    if (output / "model.safetensors").is_file():
        return output
    torch.manual_seed(seed)
    model = NanoEmoXForConditionalGeneration(NanoEmoXConfig.tiny())
    processor = NanoEmoXProcessor.tiny(face_input="full_frame")
    records = read_dataset("mer2023", corpus, modalities="T")
    collator = P2ECollator(processor)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("language_model.")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate, weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        picks = torch.randint(len(records), (batch_size,), generator=order).tolist()
        batch = [dataclasses.replace(records[i], answer=records[i].candidate_labels[int(torch.randint(
            len(records[i].candidate_labels), (1,), generator=order))]) for i in picks]  # fmt: skip
        loss, _ = forward_loss(model, dict(collator(batch)["inputs"]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    model.save_pretrained(str(output))
    processor.save_pretrained(str(output))
    (output / "PRETRAINING.json").write_text(json.dumps({"corpus": str(corpus), "steps": steps, "learning_rate": learning_rate,
                                                         "batch_size": batch_size, "final_loss": loss.item()}) + "\n")  # fmt: skip
    return output


__all__ = ["pretrain_tiny_language_model"]
