"""``mmaffect extract {discover,describe,rank,all}``: LLM-guided semantic extraction from the command line.

Examples::

    # everything with one OpenAI-compatible server for the text steps and a local video LLM
    mmaffect extract all --config configs/extract_mintrec2.yaml

    # step 3 only, with a local vLLM server, reusing the released descriptions
    mmaffect extract rank --dataset mintrec2 --data-dir ../shared/data/lgsrr_release/data_text/MIntRec2.0 \\
        --descriptions-dir ../shared/data/lgsrr_release/data_desc/mintrec2.0 --output-dir out \\
        --backend openai --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct

Any setting of the config file can also be given as ``--key value`` in the one override syntax of
:mod:`mmaffect.config` (``--rank.max_corrections 0``, ``--discover.top_k 5``); the flags above are its
shortcuts. Unknown keys are refused with the nearest known one.

Exit status: 0 when every sample succeeded, 3 when some failed (listed in the summary; rerun to
retry backend failures, ``--retry-failed`` to retry unusable replies too), 1 on a fatal error
(bad configuration, server refusing the credentials), 2 on bad flags.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .backends import BackendError
from .config import load_config
from .pipeline import run_step
from .prompts import DESCRIBE_MODES, RANK_STYLES


def _backend_flags(parser: argparse.ArgumentParser, prefix: str, what: str) -> None:
    dash = "--" + prefix.replace("_", "-")
    parser.add_argument(f"{dash}backend", dest=f"{prefix}backend",
                        choices=["openai", "transformers", "transformers-video"], help=f"{what} backend type")
    parser.add_argument(f"{dash}model", dest=f"{prefix}model",
                        help=f"{what} model: hub id / local folder, or the server's model name")
    parser.add_argument(f"{dash}base-url", dest=f"{prefix}base_url",
                        help="openai: server URL, e.g. http://127.0.0.1:8000/v1")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML settings file (flags override it)")
    common.add_argument("--dataset", help="layout: mintrec2 or iemocap-da (or a mapping in the config)")
    common.add_argument("--data-dir", help="folder with the text annotations {split}.tsv")
    common.add_argument("--video-dir", help="folder with the videos (MIntRec2.0: dia{D}_utt{U}.mp4)")
    common.add_argument("--output-dir", help="where the release files and the cache go")
    common.add_argument("--splits", nargs="+", help="splits to describe (default: train dev test)")
    common.add_argument("--limit", type=int, help="only the first N samples of each split (trial runs)")
    common.add_argument("--aspects", nargs="+", help="aspect keys (default: actions expressions interactions)")
    common.add_argument("--use-discovered-aspects", action="store_true", default=None,
                        help="take the aspects from discover.json (top-K of step 1)")
    common.add_argument("--retry-failed", action="store_true", default=None,
                        help="ask the LLM again for samples whose earlier replies were unusable")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    common.add_argument("--allow-outside-data-root", action="store_true", default=None,
                        help="accept video names that leave --video-dir (refused by default)")
    common.add_argument("--fsync", action="store_true", default=None, help="fsync the cache after every reply")
    # default backend
    _backend_flags(common, "", "LLM")
    common.add_argument("--api-key-env", help="openai: environment variable with the API key (default OPENAI_API_KEY)")
    common.add_argument("--concurrency", type=int, help="openai: requests in flight at once")
    common.add_argument("--timeout", type=float, help="openai: seconds per request")
    common.add_argument("--max-retries", type=int, help="openai: retries on 429/5xx/timeouts/malformed replies")
    common.add_argument("--temperature", type=float, help="sampling temperature (default 0 = greedy)")
    common.add_argument("--max-new-tokens", type=int, help="longest reply in tokens")
    common.add_argument("--device-map", help="transformers: device_map, e.g. auto or cuda:0")
    common.add_argument("--dtype", help="transformers: auto, bfloat16, float16 or float32")
    common.add_argument("--num-frames", type=int, help="frames sampled per video")
    common.add_argument("--video-input", choices=["auto", "video", "images"],
                        help="transformers-video: how frames reach the processor")
    # the describer, when it differs from the default backend
    _backend_flags(common, "video_", "describer (step 2)")

    parser = argparse.ArgumentParser(prog="mmaffect extract",
                                     description="LLM-guided semantic extraction (LGSRR CoT steps 1-3).",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Examples::" + __doc__.split("Examples::", 1)[1])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("discover", parents=[common], help="step 1: discover the key perspectives (top-K)")
    _discover_flags(p)
    p = sub.add_parser("describe", parents=[common], help="step 2: describe every sample per aspect (video LLM)")
    _describe_flags(p)
    p = sub.add_parser("rank", parents=[common], help="step 3: rank the aspects of every training sample")
    _rank_flags(p)
    p = sub.add_parser("all", parents=[common], help="steps 1, 2 and 3")
    _discover_flags(p)
    _describe_flags(p)
    _rank_flags(p)
    return parser


def _discover_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-samples", type=int, help="discover: background samples in all (default 20)")
    p.add_argument("--samples-per-prompt", type=int, help="discover: samples shown per prompt (default 5)")
    p.add_argument("--top-k", type=int, help="discover: perspectives kept (default 3)")
    p.add_argument("--seed", type=int, help="discover: sampling seed (default 0)")
    p.add_argument("--attach-videos", action="store_true", default=None,
                   help="discover: attach the samples' videos (needs a video-capable backend)")


def _describe_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=DESCRIBE_MODES,
                   help="describe: one prompt for all aspects (joint) or one per aspect")


def _rank_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", choices=RANK_STYLES, help="rank: prompt style (paper or reference)")
    p.add_argument("--descriptions-dir", help="rank: folder of the descriptions {split}.tsv (default: this run's)")


# The shared backend flags each backend type takes (--max-new-tokens is an openai backend's max_tokens).
BACKEND_FLAG_OPTIONS = {
    "openai": ("api_key_env", "concurrency", "timeout", "max_retries", "temperature", "num_frames", "max_new_tokens"),
    "transformers": ("temperature", "device_map", "dtype", "max_new_tokens"),
    "transformers-video": ("temperature", "device_map", "dtype", "num_frames", "video_input", "max_new_tokens"),
}
SHARED_BACKEND_FLAGS = ("api_key_env", "concurrency", "timeout", "max_retries", "temperature", "max_new_tokens",
                        "device_map", "dtype", "num_frames", "video_input")


def _backend_spec(args: argparse.Namespace, prefix: str) -> dict[str, Any] | None:
    kind = getattr(args, f"{prefix}backend")
    model = getattr(args, f"{prefix}model")
    if kind is None and model is None:
        return None
    if kind is None or model is None:
        flag = f"--{prefix.replace('_', '-')}"
        raise SystemExit(f"mmaffect extract: {flag}backend and {flag}model go together")
    spec: dict[str, Any] = {"type": kind, "model": model}
    base_url = getattr(args, f"{prefix}base_url")
    if kind == "openai":
        if not base_url:
            raise SystemExit("mmaffect extract: an openai backend needs --base-url" if not prefix
                             else "mmaffect extract: an openai describer needs --video-base-url")
        spec["base_url"] = base_url
    return spec


def apply_backend_flags(config, args: argparse.Namespace) -> None:
    """Set the shared backend flags (``--num-frames``, ``--max-retries``, ...) on every backend the
    config uses, whether it comes from the flags or from the ``--config`` file (flags override the file).
    A flag that fits none of the configured backends is an error rather than silently ignored."""
    from .backends import _TYPE_ALIASES

    given = {name: getattr(args, name, None) for name in SHARED_BACKEND_FLAGS}
    given = {name: value for name, value in given.items() if value is not None}
    specs = [spec for spec in (config.backend, *(getattr(config, step).get("backend") for step in ("discover", "describe", "rank")))
             if isinstance(spec, dict)]
    kinds = [_TYPE_ALIASES.get(spec.get("type"), spec.get("type")) for spec in specs]
    used = set()
    for spec, kind in zip(specs, kinds):
        for name in BACKEND_FLAG_OPTIONS.get(kind, ()):
            if name in given:
                spec["max_tokens" if (kind, name) == ("openai", "max_new_tokens") else name] = given[name]
                used.add(name)
    if specs and set(given) - used:
        configured = ", ".join(sorted({str(k) for k in kinds}))
        raise ValueError("; ".join(
            f"--{name.replace('_', '-')} applies to {' and '.join(k for k, names in BACKEND_FLAG_OPTIONS.items() if name in names)} "
            f"backends; the configured backends are {configured}" for name in sorted(set(given) - used)))


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "dataset": args.dataset, "data_dir": args.data_dir, "video_dir": args.video_dir,
        "output_dir": args.output_dir, "splits": args.splits, "limit": args.limit, "aspects": args.aspects,
        "use_discovered_aspects": args.use_discovered_aspects, "retry_failed": args.retry_failed,
        "fsync": args.fsync, "progress": False if args.no_progress else None,
        "allow_outside_data_root": args.allow_outside_data_root,
        "backend": _backend_spec(args, ""),
    }  # fmt: skip
    video = _backend_spec(args, "video_")
    if video is not None:
        overrides["describe"] = {"backend": video}
    discover = {name: getattr(args, name, None)
                for name in ("num_samples", "samples_per_prompt", "top_k", "seed", "attach_videos")}
    overrides["discover"] = {k: v for k, v in discover.items() if v is not None} or None
    if getattr(args, "mode", None):
        overrides["describe"] = {**(overrides.get("describe") or {}), "mode": args.mode}
    rank = {"style": getattr(args, "style", None), "descriptions_dir": getattr(args, "descriptions_dir", None)}
    overrides["rank"] = {k: v for k, v in rank.items() if v is not None} or None
    return overrides


def main(argv: list[str] | None = None) -> int:
    from mmaffect.config import ConfigError, parse_args

    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        extra = parse_args(rest)  # --any.setting value (the config file's keys)
    except ConfigError as error:
        parser.error(str(error))
    try:
        config = load_config(args.config, overrides_from_args(args), extra)
        apply_backend_flags(config, args)
        extraction = run_step(config, args.step)
    except (BackendError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"mmaffect extract {args.step}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mmaffect extract {args.step}: interrupted; finished replies are cached - rerun the same "
              "command to continue", file=sys.stderr)
        return 130
    return 3 if any(report.failed for report in extraction.reports) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
