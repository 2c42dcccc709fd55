"""Evaluate Nano-EmoX - or any multimodal LM behind an OpenAI-compatible server - on the paper's
benchmarks with the official scoring protocols.

    >>> from mmaffect.evaluation import NanoEmoXPredictor, evaluate_benchmark
    >>> predictor = NanoEmoXPredictor("runs/nano-emox", batch_size=8)
    >>> result = evaluate_benchmark(predictor, "mer2023", "eval/mer2023", data_dir="MER-UniBench/mer2023-dataset-process",
    ...                             wheel_dir="emotion_wheel")
    >>> result["table"]            # {"Hit Rate": ...} in the paper's units

* :mod:`.benchmarks` - test-split readers in the public layouts (MER-UniBench, OV-MERD, MIntRec,
  AvaMERG, EMER) as ``datasets.Dataset`` with media paths;
* :mod:`.predictors` - :class:`NanoEmoXPredictor` (processor prompts + batched ``generate``) and
  :class:`OpenAIChatPredictor` (any OpenAI-compatible chat server);
* :mod:`.scoring` - reply -> prediction -> metrics, per task and protocol; ``SCORERS``, the one scoring dispatch
  (generated replies here, prediction files in :mod:`.score_files`);
* :mod:`.harness` - the resumable loop and its files; :func:`run_suite` for Tables 2-5;
* :mod:`.tables` - the paper's tables as Markdown and a PNG chart;
* :mod:`.cli` - ``mmaffect evaluate {classifier,generate,score}`` (:mod:`.cli_classifier`, :mod:`.cli_generate`,
  :mod:`.cli_score`).

See ``docs/evaluation.md``.
"""

from .benchmarks import EVAL_BENCHMARKS, EvalBenchmark, EvalData, EvalDataError, discover_data_dirs, get_eval_benchmark, load_eval_benchmark
from .harness import ReplyStore, evaluate_benchmark, format_summary, run_suite
from .predictors import EvalRequest, NanoEmoXPredictor, OpenAIChatPredictor, Predictor, plain_prompt
from .scoring import PROMPT_TASKS, make_extractor, match_candidate_label, score_task
from .tables import paper_tables, save_paper_chart

__all__ = [
    "EVAL_BENCHMARKS", "PROMPT_TASKS", "EvalBenchmark", "EvalData", "EvalDataError", "EvalRequest", "NanoEmoXPredictor",
    "OpenAIChatPredictor", "Predictor", "ReplyStore", "discover_data_dirs", "evaluate_benchmark", "format_summary",
    "get_eval_benchmark", "load_eval_benchmark", "make_extractor", "match_candidate_label", "paper_tables",
    "plain_prompt", "run_suite", "save_paper_chart", "score_task",
]
