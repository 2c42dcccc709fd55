"""``mmaffect evaluate generate``: a multimodal LM generates on a benchmark, scored with the official protocols.

One benchmark (task inferred from the dataset; ``--task`` checks it)::

    mmaffect evaluate generate --model runs/nano-emox --dataset mer2023 --data-dir MER-UniBench/mer2023-dataset-process \\
        --wheel-dir emotion_wheel --output-dir eval/mer2023

Any OpenAI-compatible multimodal server instead of a local model::

    mmaffect evaluate generate --predictor openai --base-url http://127.0.0.1:8000/v1 --model-name Qwen2-VL-7B \\
        --dataset mer2023 --data-dir ... --wheel-dir ... --output-dir eval/qwen2vl/mer2023

Every benchmark for which data is given, with the paper's Tables 2-5 and a chart::

    mmaffect evaluate generate --suite paper --model runs/nano-emox --data-root data --wheel-dir emotion_wheel \\
        --judge-base-url https://api.openai.com/v1 --output-dir eval/paper

A killed run resumes from ``replies.jsonl`` without generating any finished sample again.

On several processes (``accelerate launch --num_processes N -m mmaffect.cli evaluate generate ...``) each process generates
its share of the batches into ``replies.part{i}.jsonl``; the main process merges them into ``replies.jsonl`` and
scores (each sample generated once, the same replies as one process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmaffect.errors import UsageError
from mmaffect.metrics.protocol import PROTOCOLS

from .benchmarks import EVAL_BENCHMARKS, TASKS, discover_data_dirs, get_eval_benchmark
from .harness import MISSING_MEDIA, evaluate_benchmark, format_summary, run_suite
from .predictors import DECODINGS, PUBLIC_CODE_MAX_NEW_TOKENS
from .score_files import json_arg, load_backend

SUITES = ("paper",)
_TASK_ALIASES = {"ov-mer": "ovmer", "ov_mer": "ovmer"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmaffect evaluate generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--model", help="Nano-EmoX folder (save_pretrained) or Hub id (local predictor)")
    what.add_argument("--predictor", choices=("nano-emox", "openai"), default=None,
                      help="nano-emox (default with --model) or openai (an OpenAI-compatible chat server)")
    what.add_argument("--base-url", help="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    what.add_argument("--model-name", help="openai: the model name the server serves")
    what.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable holding the API key")
    what.add_argument("--no-video", action="store_true", help="openai: send the text only (no frames)")
    data = parser.add_argument_group("data")
    data.add_argument("--task", help=f"one of {', '.join(TASKS)} (default: the dataset's)")
    data.add_argument("--dataset", help=f"one of {', '.join(EVAL_BENCHMARKS)}")
    data.add_argument("--data-dir", help="the benchmark's folder in its public layout (docs/evaluation.md)")
    data.add_argument("--media-dir", help="root of the media sub-folders when not under --data-dir")
    data.add_argument("--allow-outside-data-root", action="store_true",
                      help="accept sample ids whose media path leaves --data-dir / --media-dir (refused by default)")
    data.add_argument("--suite", choices=SUITES, help="paper: every benchmark with data, as Tables 2-5")
    data.add_argument("--data-root", help="--suite: folder holding the release folders (MER-UniBench/..., MER2025, "
                      "MIntRec, MIntRec2, AvaMERG, EMER)")
    data.add_argument("--data", action="append", default=[], metavar="NAME=DIR", help="--suite: one benchmark's folder (repeatable)")
    data.add_argument("--max-samples", type=int, help="the first N test samples only")
    data.add_argument("--missing-media", choices=MISSING_MEDIA, default="error",
                      help="a sample without its video/audio file: error (default) or omit that modality")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--batch-size", type=int, default=4)
    gen.add_argument("--decoding", choices=DECODINGS, default="sample",
                     help="sample (public code: temperature 1, top-p 0.9; default) or greedy")
    gen.add_argument("--max-new-tokens", type=int, default=PUBLIC_CODE_MAX_NEW_TOKENS)
    gen.add_argument("--num-beams", type=int, default=1, help="nano-emox: beam search width (1 = none; with "
                     "--decoding sample: beam sampling)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "no"),
                     help="auto: bf16 where the hardware runs it natively, else fp32")
    gen.add_argument("--modalities", default="AVFM", help="A(udio) V(ideo frames) F(ace) M(erged fusion); T = text only")
    gen.add_argument("--prompt-task", help="processor task to prompt with (default: the model's own; mer/msa/ovmer: "
                     "OV-MER only for a model trained on it, else MER; docs/evaluation.md)")
    gen.add_argument("--trust-remote-code", action="store_true", help="load the model folder's own code")
    gen.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    score = parser.add_argument_group("scoring")
    score.add_argument("--protocol", choices=PROTOCOLS, help="official (the published scripts) or mmaffect; "
                       "default: each metric's own (docs/metrics.md)")
    score.add_argument("--wheel-dir", help="emotion-wheel folder (mer, ovmer, msa); default $MMAFFECT_WHEEL_DIR")
    score.add_argument("--extractor", choices=("lexicon", "llm"), default="lexicon",
                       help="reply -> labels: lexicon (offline proxy, default) or llm (the benchmark's LLM step)")
    score.add_argument("--llm-backend", help="--extractor llm: backend type (openai, transformers) or MODULE:FACTORY")
    score.add_argument("--llm-kwargs", default="{}", help="JSON options of the extractor backend")
    score.add_argument("--judge-base-url", help="ERI judge: OpenAI-compatible server (official: api.openai.com/v1)")
    score.add_argument("--judge-model", default="gpt-3.5-turbo-0125", help="ERI judge model (official: gpt-3.5-turbo-0125)")
    score.add_argument("--judge-api-key-env", default="OPENAI_API_KEY")
    parser.add_argument("--output-dir", help="default: eval/<model>/<dataset> (or eval/<model>/paper)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def make_predictor(args):
    kind = args.predictor or ("nano-emox" if args.model else None)
    if kind is None:
        raise UsageError("say what to evaluate: --model DIR (Nano-EmoX) or --predictor openai --base-url URL --model-name NAME")
    if kind == "openai":
        if not args.base_url or not args.model_name:
            raise UsageError("--predictor openai needs --base-url and --model-name")
        if args.num_beams != 1:
            raise UsageError("--num-beams is a nano-emox option (a chat server decodes on its own)")
        from .predictors import OpenAIChatPredictor

        return OpenAIChatPredictor(args.base_url, args.model_name, batch_size=args.batch_size, send_video=not args.no_video,
                                   api_key_env=args.api_key_env, max_tokens=args.max_new_tokens)
    if not args.model:
        raise UsageError("--predictor nano-emox needs --model DIR")
    from .predictors import NanoEmoXPredictor

    return NanoEmoXPredictor(args.model, batch_size=args.batch_size, decoding=args.decoding, max_new_tokens=args.max_new_tokens,
                             seed=args.seed, precision=args.precision, modalities=args.modalities,
                             trust_remote_code=args.trust_remote_code, device=args.device or _process_device(),
                             num_beams=args.num_beams)


def _process_device() -> str | None:
    """Under ``accelerate launch`` (several processes): this process's device (``cuda:{local rank}``, or cpu)."""
    from .harness import _process_shard

    shard = _process_shard()
    return None if shard is None else str(shard.device)


def _scale(predictor) -> str | None:
    count = getattr(predictor, "num_parameters", None)
    if not count:
        return None
    return f"{count / 1e9:.1f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"


def make_judge_factory(args):
    """``output_dir -> OfficialOverlapJudge | OverlapJudge`` on the --judge-* server, or None."""
    if not args.judge_base_url:
        return None
    from mmaffect.metrics.eri import make_overlap_judge
    from mmaffect.semantic_extraction.backends import OpenAICompatibleBackend

    def factory(output_dir):
        # the official script sends model, messages and temperature only: no max_tokens
        backend = OpenAICompatibleBackend(args.judge_base_url, args.judge_model, api_key_env=args.judge_api_key_env,
                                          temperature=0.0, max_tokens=None)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        return make_overlap_judge(backend, args.protocol, cache_path=Path(output_dir) / "eri_judge.jsonl")

    return factory


def _options(args, predictor) -> dict:
    llm_backend = None
    if args.extractor == "llm":
        if not args.llm_backend:
            raise UsageError("--extractor llm needs --llm-backend")
        llm_backend = load_backend(args.llm_backend, json_arg(args.llm_kwargs, "--llm-kwargs"))
    return dict(media_dir=args.media_dir, prompt_task=args.prompt_task, protocol=args.protocol, wheel_dir=args.wheel_dir,
                extractor=args.extractor, llm_backend=llm_backend, max_samples=args.max_samples,
                missing_media=args.missing_media, progress=not args.quiet, scale=_scale(predictor),
                allow_outside_data_root=args.allow_outside_data_root)


def _suite_dirs(args) -> dict:
    dirs = dict(discover_data_dirs(args.data_root)) if args.data_root else {}
    for item in args.data:
        name, sep, folder = item.partition("=")
        if not sep or not folder:
            raise UsageError(f"--data expects NAME=DIR, got {item!r}")
        dirs[get_eval_benchmark(name).name] = Path(folder)
    if not dirs:
        raise UsageError("--suite paper found no benchmark: pass --data-root ROOT (release folder names) or --data NAME=DIR")
    return dirs


def run(args) -> int:
    if args.suite:
        if args.media_dir or args.dataset or args.data_dir:
            raise UsageError("--suite takes --data-root / --data NAME=DIR (media under each folder), not --dataset, "
                             "--data-dir or --media-dir")
        predictor = make_predictor(args)
        output_dir = Path(args.output_dir or Path("eval") / predictor.name / "paper")
        if args.wheel_dir is None and args.data_root and (Path(args.data_root) / "emotion_wheel").is_dir():
            args.wheel_dir = str(Path(args.data_root) / "emotion_wheel")
        outcome = run_suite(predictor, _suite_dirs(args), output_dir, judge_factory=make_judge_factory(args),
                            **_options(args, predictor))
        print(Path(outcome["tables"]).read_text(encoding="utf-8"))
        print(f"wrote {outcome['tables']}, {output_dir / 'paper_tables.json'}" + (f", {outcome['chart']}" if outcome["chart"] else ""))
        return 1 if outcome["errors"] else 0
    if not args.dataset or not args.data_dir:
        raise UsageError("pass --dataset NAME --data-dir DIR (or --suite paper)")
    bench = get_eval_benchmark(args.dataset)
    if args.task is not None:
        task = _TASK_ALIASES.get(args.task.lower(), args.task.lower())
        if task not in TASKS:
            raise UsageError(f"--task must be one of {TASKS}, got {args.task!r}")
        if task != bench.task:
            raise UsageError(f"--dataset {bench.name} is a {bench.task} benchmark, not {task}")
    predictor = make_predictor(args)
    output_dir = Path(args.output_dir or Path("eval") / predictor.name / bench.name)
    factory = make_judge_factory(args)
    judge = factory(output_dir) if (factory is not None and bench.task == "eri") else None
    result = evaluate_benchmark(predictor, bench.name, output_dir, data_dir=args.data_dir, judge=judge, **_options(args, predictor))
    print(format_summary(result))
    print(f"wrote {output_dir}/results.json, predictions.jsonl, replies.jsonl, summary.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Errors propagate: ``mmaffect evaluate`` shows them as one line and exits 2 (``--debug`` for the
    traceback, :mod:`mmaffect.errors`); Ctrl-C exits 130 and the next run resumes."""
    return run(build_parser().parse_args(list(sys.argv[1:] if argv is None else argv)))


__all__ = ["SUITES", "build_parser", "main", "make_judge_factory", "make_predictor", "run"]
