"""The regression gate: a pure function from (baseline, run) to findings.

Rules, numbered as in docs/gate.md and the tests:

1. **Inputs.** Both sides must be usable (files, schema: ``baseline.InputError``) and come
   from the same device *type*; on CUDA also the same device *model* (``device_name``).
   Otherwise the gate cannot say anything: exit 2. CPU model names may differ (CI runners
   change), because on CPU only the deterministic metrics are gated.
2. **Matching.** Rows match on ``ROW_KEY`` (workload, variant, dtype, num_tokens, hidden, device).
   Rows whose ``status`` is ``skipped`` on either side are ignored. A row in the baseline
   missing from the run is a REGRESSION (coverage silently shrank; refresh the baseline on
   purpose if that was intended; with ``--partial`` it is a NOTE); a run row with no baseline
   row is a NOTE.
3. **Contracts** (hold on every machine; gated exactly, no tolerance): ``clones_after``,
   ``kernels``, ``copies``, ``bytes_accessed``, ``bytes_exact`` must not grow (a baseline without
   ``copies`` or ``bytes_exact``, written before they existed, gates nothing on it); ``ok`` must
   not turn false; and
   ``bitwise_equal`` must not turn false on rows that promise bit-equality with a partner
   (``bitwise_partner`` set: ``cleanpass`` and ``vllm`` against ``lowered``, since the pass may
   not change a single bit).
   **Observations** (depend on the machine): ``bitwise_equal`` of every other row (``eager``,
   ``native``, ``ideal`` against ``lowered``) changes with the CPU's vector units. A flip is a
   WARN on the same device model and a NOTE across models; it never fails the gate.
4. **Latency gate** (only when both sides ran on the same CUDA model, or on CPU when asked):
   bootstrap CI of median(run)/median(baseline) from the raw block samples
   (``stats.ratio_ci``). REGRESSION when the CI's lower bound is above ``1 + threshold``
   *and* the median grew by more than ``floor_us``; WARN when only the point estimate is.
   With ``--confirm-run`` (a rerun of the same code), a latency REGRESSION stands only when
   the rerun regresses on the same row too ("and a rerun agrees": one noisy run never fails alone).
5. **Ratio gate** (where latency is gated): the in-run ratios ``cleanpass/lowered``,
   ``cleanpass/ideal``, ``cleanpass/native`` and ``cleanpass/cleanpass_nofold``
   (``ratios.ratio_table``: paired bootstrap of one run's interleaved blocks) against the
   baseline's. The reference is the baseline ratio's
   upper bound, or the ratchet's held value when lower (``baseline --refresh --ratchet``).
   REGRESSION when the run's lower bound is above ``reference * (1 + threshold)`` and the
   extra time, at the run's denominator median, exceeds ``floor_us``; WARN when only the point
   is. A ratio whose upper bound falls below ``reference / (1 + threshold)`` is a NOTE: a gain
   landed, refresh with ``--ratchet`` to hold it.
6. **Versions.** When torch, Triton, the driver, CUDA, vLLM (the ``vllm_real`` variant's pass)
   or the CPU run's thread count differ between the baseline and the run, timings are not comparable: every latency and ratio REGRESSION/WARN becomes a NOTE
   that says so, and one NOTE names the change (refresh the baseline). Contracts still gate.

Exit code: 1 if any REGRESSION, else 0 (WARN and NOTE do not fail).
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field

import pandas as pd

from harness.judge import ratios as ratiomod
from harness.judge.stats import DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, TooFewSamples, ratio_ci
from harness.store.baseline import STACK_KEYS, InputError, RunData
from harness.store.results import ROW_KEY, Status

log = logging.getLogger(__name__)

EXIT_PASS, EXIT_REGRESSION, EXIT_UNUSABLE = 0, 1, 2

#: metric -> what it means when it grows.
GROW_RULES = {
    "clones_after": "the pass left a clone it used to remove",
    "kernels": "more kernels launched than in the baseline",
    "copies": "the generated code copies more than in the baseline",
    "bytes_accessed": "the compiled code moves more bytes than in the baseline",
    "bytes_exact": "the compiled code moves more bytes than in the baseline (exact count)",
}
#: metric -> what it means when it turns false.
FLAG_RULES = {
    "ok": "the variant no longer validates",
    "bitwise_equal": "outputs are no longer bit-identical to the variant they promise to match",
}
#: Flags that are a contract only on rows that carry a promise (rule 3); elsewhere observations.
PROMISED_FLAGS = {"bitwise_equal": "bitwise_partner"}
#: env keys whose change makes timings incomparable (rule 6).
#: metrics judged on timings: rule 6 turns their findings into notes.
TIMED_PREFIXES = ("latency_us_p50", "ratio ")
DTYPE_SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float64": "fp64"}


class LatencyVerdict(str, enum.Enum):
    """One latency comparison's outcome (rule 4)."""

    PASS = "pass"
    WARN = "warn"
    REGRESSION = "regression"


class Level(enum.Enum):
    REGRESSION = "REGRESSION"
    WARN = "WARN"
    NOTE = "NOTE"


@dataclass(frozen=True)
class GateConfig:
    """Latency thresholds and bootstrap settings (exact gates have no knobs on purpose)."""

    threshold: float = 0.05  # relative: fail when the CI lower bound > 1 + threshold
    floor_us: float = 0.25  # absolute: and the p50 grew by more than this many microseconds
    confidence: float = DEFAULT_CONFIDENCE
    n_boot: int = DEFAULT_BOOTSTRAP
    seed: int = 0
    min_blocks: int = 5
    latency_on_cpu: bool = False  # CPU CI runners are shared and noisy: off by default
    partial: bool = False  # the run covers part of the matrix (--workloads, --shard)


@dataclass(frozen=True)
class Finding:
    level: Level
    key: tuple | None
    metric: str
    before: object = None
    after: object = None
    reason: str = ""

    def line(self) -> str:
        """One readable line, e.g. ``REGRESSION cleanpass rms_norm bf16 T=32 H=4096: ...``."""
        where = f" {describe_key(self.key)}" if self.key is not None else ""
        if self.before is None and self.after is None:
            return f"{self.level.value}{where}: {self.metric} ({self.reason})"
        return (
            f"{self.level.value}{where}: {self.metric} {_fmt(self.before)} -> "
            f"{_fmt(self.after)} ({self.reason})"
        )


@dataclass(frozen=True)
class LatencyComparison:
    """One latency comparison, kept for the report (forest plot and table)."""

    key: tuple
    base_p50: float
    run_p50: float
    point: float
    low: float
    high: float
    verdict: LatencyVerdict


@dataclass
class GateResult:
    findings: list[Finding] = field(default_factory=list)
    rows_compared: int = 0
    latency: list[LatencyComparison] = field(default_factory=list)
    latency_gated: bool = False
    ratios: pd.DataFrame | None = None  # the run's ratio lines joined with the baseline's

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_PASS

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.level is Level.REGRESSION]

    def summary(self) -> str:
        n = {lvl: sum(f.level is lvl for f in self.findings) for lvl in Level}
        verdict = "FAIL" if self.regressions else "PASS"
        latency = "latency gated" if self.latency_gated else "latency not gated"
        return (
            f"gate {verdict}: {self.rows_compared} rows compared ({latency}); "
            f"{n[Level.REGRESSION]} regressions, {n[Level.WARN]} warnings, {n[Level.NOTE]} notes"
        )


def describe_key(key: tuple) -> str:
    """``cleanpass rms_norm bf16 T=32 H=4096`` (plus the device when it is not the usual one)."""
    rec = dict(zip(ROW_KEY, key))
    dtype = DTYPE_SHORT.get(str(rec["dtype"]), str(rec["dtype"]))
    return f"{rec['variant']} {rec['workload']} {dtype} T={rec['num_tokens']} H={rec['hidden']}"


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if not value.is_integer() else str(int(value))
    return str(value)


def is_skipped(row: dict) -> bool:
    """Rows the runner skipped on purpose (no backend, suite filter): ``status == skipped``."""
    return row.get("status") == Status.SKIPPED.value


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and not (
        value is pd.NA
    )


def _as_bool(value: object) -> bool | None:
    if not _present(value):
        return None
    return bool(value)


def _index(rows: pd.DataFrame, side: str, findings: list[Finding]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for rec in rows.to_dict("records"):
        key = tuple(rec[c] for c in ROW_KEY)
        key = tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in key)
        if key in out:
            findings.append(Finding(Level.NOTE, key, f"duplicate {side} row", reason="first kept"))
            continue
        out[key] = rec
    return out


def check_compatible(baseline: RunData, run: RunData) -> list[Finding]:
    """Rule 1: raise InputError when the two sides must not be compared at all."""
    notes: list[Finding] = []
    if not baseline.device or not run.device:
        raise InputError("env.json lacks 'device' on one side")
    if baseline.device != run.device:
        raise InputError(f"device type differs: baseline {baseline.device}, run {run.device}")
    if baseline.device_name != run.device_name:
        if baseline.device != "cpu":
            raise InputError(
                f"device model differs: baseline {baseline.device_name!r}, "
                f"run {run.device_name!r}; never compare across GPU models"
            )
        notes.append(
            Finding(
                Level.NOTE,
                None,
                f"CPU model differs ({baseline.device_name!r} vs {run.device_name!r})",
                reason="only contracts are gated; machine-dependent observations become notes",
            )
        )
    return notes


def latency_applies(baseline: RunData, run: RunData, config: GateConfig) -> bool:
    """Latency is gated on the same CUDA model (always) or on CPU only when configured."""
    if baseline.device_name != run.device_name:
        return False
    return baseline.device != "cpu" or config.latency_on_cpu


def _promised(flag: str, base: dict, cur: dict) -> bool:
    """Whether ``flag`` is a contract on this row pair (rule 3); unpromised flags observe."""
    column = PROMISED_FLAGS.get(flag)
    if column is None:
        return True
    return bool(cur.get(column) or base.get(column))


def exact_findings(key: tuple, base: dict, cur: dict, same_machine: bool = True) -> list[Finding]:
    """Rule 3 for one matched row pair."""
    out: list[Finding] = []
    for metric, why in GROW_RULES.items():
        b, r = base.get(metric), cur.get(metric)
        if not _present(b):
            continue
        if not _present(r):
            out.append(Finding(Level.REGRESSION, key, metric, b, "missing", "no longer measured"))
        elif float(r) > float(b):
            out.append(Finding(Level.REGRESSION, key, metric, b, r, why))
    for metric, why in FLAG_RULES.items():
        b, r = _as_bool(base.get(metric)), _as_bool(cur.get(metric))
        if b is True and r is not True:
            reason = why
            if metric == "ok" and cur.get("error"):
                reason = f"{why}: {cur['error']}"
            level = Level.REGRESSION
            if not _promised(metric, base, cur):
                level = Level.WARN if same_machine else Level.NOTE
                reason = "machine-dependent observation (eager/generated-code arithmetic), not gated"
            out.append(Finding(level, key, metric, True, r if r is not None else "n/a", reason))
    return out


def latency_finding(
    key: tuple, baseline: RunData, run: RunData, config: GateConfig
) -> tuple[Finding | None, LatencyComparison | None]:
    """Rule 4 for one matched row pair (independent bootstrap: two different runs)."""
    b = baseline.samples_for(key)["sample_us"].to_numpy(float)
    r = run.samples_for(key)["sample_us"].to_numpy(float)
    try:
        ci = ratio_ci(
            b,
            r,
            paired=False,
            n_boot=config.n_boot,
            confidence=config.confidence,
            seed=config.seed,
            min_blocks=config.min_blocks,
        )
    except TooFewSamples as exc:
        return Finding(Level.NOTE, key, "latency not gated", reason=str(exc)), None
    b50, r50 = float(pd.Series(b).median()), float(pd.Series(r).median())
    limit = 1.0 + config.threshold
    grew_enough = (r50 - b50) > config.floor_us
    pct = int(round(config.confidence * 100))
    detail = f"x{ci.point:.3f}, {pct}% CI [{ci.low:.3f}, {ci.high:.3f}], limit {limit:.3f}"
    if ci.low > limit and grew_enough:
        verdict, level = LatencyVerdict.REGRESSION, Level.REGRESSION
        detail += f", +{r50 - b50:.2f} us > floor {config.floor_us:g} us"
    elif ci.point > limit and grew_enough:
        verdict, level = LatencyVerdict.WARN, Level.WARN
        detail += "; only the point estimate is above: rerun to confirm"
    else:
        verdict, level = LatencyVerdict.PASS, None
    comp = LatencyComparison(key, b50, r50, ci.point, ci.low, ci.high, verdict)
    if level is None:
        return None, comp
    return Finding(level, key, "latency_us_p50", round(b50, 3), round(r50, 3), detail), comp


def version_changes(baseline: RunData, run: RunData) -> list[str]:
    """Rule 6: ``torch 2.12.0 -> 2.13.0`` for every version key that differs."""
    out = []
    for k in STACK_KEYS:
        b, r = baseline.env.get(k), run.env.get(k)
        if (b or None) != (r or None):
            out.append(f"{k} {b or 'none'} -> {r or 'none'}")
    return out


def held_ratios(baseline: RunData) -> dict[tuple, float]:
    """The ratchet's held ratios stored in a baseline (empty when it has none)."""
    held = {}
    for rec in baseline.extra.get("ratio_hold", []) or []:
        try:
            held[ratiomod.ratio_key(rec)] = float(rec["hold"])
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed ratio_hold entry: %r", rec)
    return held


def ratio_reference(base_ratios: pd.DataFrame, held: dict[tuple, float]) -> dict[tuple, float]:
    """Per ratio line, the value a run is held to: the baseline's upper bound or the held one."""
    ref = {}
    for rec in base_ratios.to_dict("records"):
        key = ratiomod.ratio_key(rec)
        high = float(rec["ratio_high"])  # NaN: too few blocks for an interval
        ref[key] = min(high, held[key]) if key in held and not math.isnan(high) else high
    return ref


def ratchet_holds(old: RunData | None, new: RunData) -> list[dict]:
    """The ratchet: per ratio line of ``new``, the lower of its upper bound and ``old``'s
    reference, so a gain once landed is not given back by a later refresh."""
    old_ref = {}
    if old is not None:
        old_ref = ratio_reference(ratiomod.ratio_table(old.samples), held_ratios(old))
    holds = []
    for rec in ratiomod.ratio_table(new.samples).dropna(subset=["ratio_high"]).to_dict("records"):
        key = ratiomod.ratio_key(rec)
        old_value = old_ref.get(key, math.inf)
        hold = min(float(rec["ratio_high"]), old_value if old_value == old_value else math.inf)
        holds.append({**{c: rec[c] for c in ratiomod.CASE}, "denominator": rec["denominator"],
                      "hold": hold})
    return holds


def ratio_findings(baseline: RunData, run: RunData, config: GateConfig) -> tuple[list[Finding], pd.DataFrame]:
    """Rule 5: the run's in-run ratios against the baseline's (and the ratchet's held values)."""
    kw = dict(n_boot=config.n_boot, confidence=config.confidence, seed=config.seed,
              min_blocks=config.min_blocks)
    base = ratiomod.ratio_table(baseline.samples, **kw)
    cur = ratiomod.ratio_table(run.samples, **kw)
    reference = ratio_reference(base, held_ratios(baseline))
    by_key = {ratiomod.ratio_key(r): r for r in cur.to_dict("records")}
    limit_f = 1.0 + config.threshold
    pct = int(round(config.confidence * 100))
    findings, lines = [], []
    for key, ref in reference.items():
        row_key = ratiomod.row_key(key, ROW_KEY)
        metric = f"ratio {ratiomod.NUMERATOR}/{key[-1]}"
        rec = by_key.get(key)
        if rec is None:
            findings.append(Finding(Level.NOTE, row_key, metric, reason="not measured in the run"))
            continue
        if math.isnan(ref) or math.isnan(float(rec["ratio_low"])):
            findings.append(Finding(Level.NOTE, row_key, f"{metric} not gated",
                                    reason=f"fewer than {config.min_blocks} paired blocks on a side"))
            continue
        limit = ref * limit_f
        extra_us = (rec["ratio"] - ref) * rec["denominator_p50_us"]
        detail = (f"{pct}% CI [{rec['ratio_low']:.3f}, {rec['ratio_high']:.3f}], "
                  f"limit {limit:.3f} (reference {ref:.3f})")
        verdict = "pass"
        if rec["ratio_low"] > limit and extra_us > config.floor_us:
            verdict, level = "regression", Level.REGRESSION
            detail += f", +{extra_us:.2f} us > floor {config.floor_us:g} us"
        elif rec["ratio"] > limit and extra_us > config.floor_us:
            verdict, level = "warn", Level.WARN
            detail += "; only the point estimate is above: rerun to confirm"
        elif rec["ratio_high"] < ref / limit_f:
            verdict, level = "gain", Level.NOTE
            detail += "; a gain landed: refresh the baseline with --ratchet to hold it"
        if verdict != "pass":
            findings.append(Finding(level, row_key, metric, round(ref, 4), round(rec["ratio"], 4), detail))
        lines.append({**rec, "reference": ref, "verdict": verdict})
    return findings, pd.DataFrame.from_records(lines)


def _as_note(f: Finding, changes: list[str]) -> Finding:
    """Rule 6: a timing finding across a version change is a note, never a silent pass."""
    if f.level is Level.NOTE or not f.metric.startswith(TIMED_PREFIXES):
        return f
    return Finding(Level.NOTE, f.key, f.metric, f.before, f.after,
                   f"{f.reason}; not comparable across {', '.join(changes)}")


def gate(baseline: RunData, run: RunData, config: GateConfig | None = None) -> GateResult:
    """Compare ``run`` against ``baseline`` (rules 1-6 above); pure, raises InputError."""
    config = config or GateConfig()
    result = GateResult()
    result.findings.extend(check_compatible(baseline, run))
    base_rows = _index(baseline.rows, "baseline", result.findings)
    run_rows = _index(run.rows, "run", result.findings)
    do_latency = latency_applies(baseline, run, config)
    if do_latency and not (baseline.has_samples and run.has_samples):
        raise InputError("latency gating needs samples.parquet on both sides")
    result.latency_gated = do_latency

    same_machine = baseline.device_name == run.device_name
    for key, base in base_rows.items():
        if is_skipped(base):
            continue
        cur = run_rows.get(key)
        if cur is None:
            result.findings.append(
                Finding(
                    Level.NOTE if config.partial else Level.REGRESSION,
                    key,
                    "row missing from the run",
                    reason="the baseline measured it; refresh the baseline if dropping it is intended",
                )
            )
            continue
        if is_skipped(cur):
            result.findings.append(
                Finding(Level.NOTE, key, "skipped in the run", reason=str(cur.get("error")))
            )
            continue
        result.rows_compared += 1
        result.findings.extend(exact_findings(key, base, cur, same_machine))
        if do_latency:
            finding, comp = latency_finding(key, baseline, run, config)
            if finding is not None:
                result.findings.append(finding)
            if comp is not None:
                result.latency.append(comp)
    if do_latency:
        found, result.ratios = ratio_findings(baseline, run, config)
        result.findings.extend(found)
    changes = version_changes(baseline, run)
    if changes:
        result.findings = [_as_note(f, changes) for f in result.findings]
        result.findings.append(Finding(
            Level.NOTE, None, f"versions changed ({', '.join(changes)})",
            reason="latency and ratio findings are notes; refresh the baseline on this stack"))
    for key, cur in run_rows.items():
        if key not in base_rows and not is_skipped(cur):
            result.findings.append(
                Finding(Level.NOTE, key, "new row", reason="not in the baseline; not gated")
            )
    order = {Level.REGRESSION: 0, Level.WARN: 1, Level.NOTE: 2}
    result.findings.sort(key=lambda f: order[f.level])
    log.info(result.summary())
    return result


def confirm(first: GateResult, rerun: GateResult) -> GateResult:
    """"And a rerun agrees": keep a latency REGRESSION of ``first`` only when
    the same row also regresses in ``rerun`` (a second run of the same code); otherwise it
    becomes a WARN. Exact findings are deterministic and kept as they are."""
    again = {(f.key, f.metric) for f in rerun.findings
             if f.level is Level.REGRESSION and f.metric.startswith(TIMED_PREFIXES)}
    out = GateResult(rows_compared=first.rows_compared, latency=first.latency,
                     latency_gated=first.latency_gated, ratios=first.ratios)
    for f in first.findings:
        if (f.level is Level.REGRESSION and f.metric.startswith(TIMED_PREFIXES)
                and (f.key, f.metric) not in again):
            f = Finding(Level.WARN, f.key, f.metric, f.before, f.after,
                        f"{f.reason}; the rerun did not confirm it")
        out.findings.append(f)
    return out
