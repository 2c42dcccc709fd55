"""A Gradio demo of a trained LGSRR checkpoint (Space-ready): an utterance and the descriptions of its clip
(or the clip itself, with an extraction backend configured) -> the intent, its probability, the top-5,
and a bar chart of how much the text and each description counted (the importance α).

    pip install "mmaffect[demo]"
    python demo/app.py --model outputs/demo/best_model            # http://127.0.0.1:7860
    python demo/app.py --model user/lgsrr-mintrec2 --extraction-config extract.yaml   # + a clip input

On a Hugging Face Space, set the variable ``MMAFFECT_DEMO_MODEL`` to the checkpoint's Hub id (and
optionally ``MMAFFECT_EXTRACTION_CONFIG``) and use this file as ``app.py``. The checkpoint is loaded
through ``transformers.pipeline(..., trust_remote_code=True)``: its own code, no mmaffect needed
unless clips are described.
"""

from __future__ import annotations

import argparse
import os
import sys

import gradio as gr

TASK = "multimodal-intent-recognition"
CSS = "#intent textarea {font-size: 1.4em; font-weight: 600}"


def load_classifier(model: str, extraction_config: str | None = None, device: str = "cpu"):
    from transformers import pipeline

    describer = None
    if extraction_config:
        from mmaffect.semantic_extraction import ClipDescriber

        describer = ClipDescriber.from_config(extraction_config)
    return pipeline(TASK, model=model, trust_remote_code=True, describer=describer, device=device)


def importance_figure(importance: dict | None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 2.4), dpi=100)
    if importance:
        names, values = list(importance), list(importance.values())
        bars = axis.barh(names[::-1], values[::-1], color=["#4c72b0"] * (len(names) - 1) + ["#dd8452"])
        axis.bar_label(bars, fmt="%.2f", padding=3)
        axis.set_xlim(0, max(1.0, max(values) * 1.15))
        axis.set_xlabel("importance α (sums to 1)")
    else:
        axis.text(0.5, 0.5, "this model computes no importance", ha="center", va="center")
        axis.set_axis_off()
    axis.set_title("How much each cue counted")
    figure.tight_layout()
    return figure


def build_app(classifier, title: str = "LGSRR: multimodal intent recognition") -> gr.Blocks:
    aspects = list(classifier.model.config.aspects)
    can_describe = classifier.describer is not None

    def classify(text, *values):
        descriptions, video = list(values[: len(aspects)]), values[len(aspects)] if can_describe else None
        example = {"text": text or ""}
        if any((d or "").strip() for d in descriptions) or not video:
            example["descriptions"] = dict(zip(aspects, (d or "" for d in descriptions)))
        else:
            example["video"] = video
        try:
            result = classifier(example, top_k=5)
        except (TypeError, ValueError, FileNotFoundError, RuntimeError) as error:
            raise gr.Error(str(error)) from None
        written = result.get("descriptions") or {}
        top = {entry["label"]: entry["score"] for entry in result["top_k"]}
        updates = [result["label"], f"{result['score']:.3f}", top, importance_figure(result["importance"])]
        return updates + [written.get(a, d) for a, d in zip(aspects, descriptions)]

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}\nAn utterance and what an LLM saw in its clip ({', '.join(aspects)}) go through "
                    "LGSRR's relations: importance α, complementarity β, inconsistency γ.")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Utterance", elem_id="utterance", lines=2)
                boxes = [gr.Textbox(label=f"Description: {a}", elem_id=f"description-{a}", lines=2) for a in aspects]
                inputs = [text, *boxes]
                if can_describe:
                    inputs.append(gr.Video(label="Clip (leave the descriptions empty to have them written)",
                                           elem_id="clip"))
                button = gr.Button("Recognise intent", variant="primary", elem_id="predict")
            with gr.Column():
                with gr.Row():
                    intent = gr.Textbox(label="Intent", elem_id="intent", interactive=False)
                    score = gr.Textbox(label="Probability", elem_id="score", interactive=False)
                plot = gr.Plot(label="Cue importance", elem_id="importance")
                top = gr.Label(label="Top 5", num_top_classes=5, elem_id="top-k")
        button.click(classify, inputs=inputs, outputs=[intent, score, top, plot, *boxes])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("MMAFFECT_DEMO_MODEL"),
                        help="a trained LGSRR folder or Hub id (default: $MMAFFECT_DEMO_MODEL)")
    parser.add_argument("--extraction-config", default=os.environ.get("MMAFFECT_EXTRACTION_CONFIG"),
                        help="an mmaffect extract YAML: adds a clip input whose descriptions it writes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("give --model (a trained LGSRR folder or Hub id) or set MMAFFECT_DEMO_MODEL")
    classifier = load_classifier(args.model, args.extraction_config, args.device)
    # system fonts only: the page must not need anything from the internet
    theme = gr.themes.Default(font=["sans-serif"], font_mono=["monospace"])
    build_app(classifier).launch(server_name=args.host, server_port=args.port, theme=theme, css=CSS,
                                 footer_links=[], ssr_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
