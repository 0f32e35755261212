"""The nightly trend rule: judge one run against earlier runs of the same GPU model. Pure.

Per row key and metric, on runs of the **same GPU model** and suite only (a GPU's single run is
noisy; its recent median is not):

1. The *reference* of a run is the median of that metric over the last ``window`` earlier
   runs (at least ``min_history`` of them, or the metric is not judged: NOTE).
2. A run *violates* when
   - ``clones_after``, ``kernels``, ``copies`` or ``bytes_accessed`` is above its reference
     (history runs written before ``copies`` existed are no reference for it);
   - ``ok`` or ``bitwise_equal`` is false where most reference runs had it true;
   - ``latency_us_p50`` is above ``reference * (1 + threshold)`` and by more than ``floor_us``.
3. A violation in tonight's run alone is a WARN; tonight's and the previous run's together
   (the previous one judged against *its* own window) are a REGRESSION, and the exit code
   is 1. One noisy night never pages anyone; a real regression pages on the second night.

History layout: ``DIR/<run dir>/`` each with ``env.json`` and ``results.parquet`` (what
``harness run`` and ``harness merge`` write), read in one call into one DataFrame
(``harness.store.history.load_runs``); the trend judges that frame. ``python -m harness nightly`` (``harness.cli``)
composes the job: run the suite into ``DIR``, judge it here, write ``trend.csv`` and the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.judge.gate import Finding, GateConfig, Level
from harness.store.baseline import RunData
from harness.store.history import load_runs
from harness.store.results import ROW_KEY, measured_rows

log = logging.getLogger(__name__)

GROW_METRICS = ("clones_after", "kernels", "copies", "bytes_accessed")
FLAG_METRICS = ("ok", "bitwise_equal")
LATENCY = "latency_us_p50"


@dataclass(frozen=True)
class TrendConfig:
    window: int = 7
    min_history: int = 3
    threshold: float = 0.05
    floor_us: float = GateConfig.floor_us


@dataclass
class TrendResult:
    findings: list[Finding]
    history_used: list[str]
    table: pd.DataFrame  # one line per violation: key, metric, value, reference, prev verdict

    @property
    def exit_code(self) -> int:
        return 1 if any(f.level is Level.REGRESSION for f in self.findings) else 0


def _utc(run: RunData) -> pd.Timestamp:
    ts = pd.to_datetime(run.env.get("utc"), utc=True, errors="coerce")
    return ts if not pd.isna(ts) else pd.Timestamp.min.tz_localize("UTC")


def discover_history(history: Path | str, like: RunData) -> pd.DataFrame:
    """The rows of every complete, unsharded run in ``history`` (``history.load_runs``) of the
    same device model and suite as ``like``, oldest run first; ``like`` itself is left out."""
    frame = load_runs(history)
    if frame.empty:
        return frame
    this = str(Path(like.source).resolve()) if like.source else None
    keep = pd.Series(True, index=frame.index)
    if this is not None:
        keep &= frame["run_dir"].map(lambda d: str(Path(d).resolve())) != this
    if "env_shard" in frame:
        keep &= frame["env_shard"].isna() | (frame["env_shard"].astype(str).isin(["", "None"]))
    for col, want in (("env_device", like.device), ("env_device_name", like.device_name),
                      ("env_suite", like.env.get("suite"))):
        values = frame[col] if col in frame else pd.Series(None, index=frame.index)
        keep &= values.fillna("").astype(str) == str(want or "")
    return frame[keep].reset_index(drop=True)


def _run_order(history: pd.DataFrame) -> list[str]:
    """The history's run ids, oldest first."""
    if history.empty:
        return []
    first = history.drop_duplicates("run_id")
    utc = first["run_utc"].fillna(pd.Timestamp.min.tz_localize("UTC"))
    return list(first.assign(_utc=utc).sort_values(["_utc", "run_id"], kind="stable")["run_id"])


def _long(rows: pd.DataFrame) -> pd.DataFrame:
    """Key columns + the judged metrics of the usable rows of one or many runs."""
    rows = measured_rows(rows)
    cols = [c for c in GROW_METRICS + FLAG_METRICS + (LATENCY,) if c in rows.columns]
    out = rows[list(ROW_KEY) + cols + (["run_id"] if "run_id" in rows else [])].copy()
    for c in GROW_METRICS + (LATENCY,):
        if c in out:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in FLAG_METRICS:
        if c in out:
            out[c] = out[c].map(lambda v: float(bool(v)) if v is not None and not pd.isna(v) else float("nan"))
    if "bitwise_equal" in out and "bitwise_partner" in rows:
        # only promised bit-equality is judged (gate rule 3); the rest is a machine observation
        out.loc[rows["bitwise_partner"].fillna("").astype(str) == "", "bitwise_equal"] = float("nan")
    dedup = list(ROW_KEY) + (["run_id"] if "run_id" in out else [])
    return out.drop_duplicates(dedup).drop(columns=["run_id"], errors="ignore")


def violations(rows: pd.DataFrame, window: pd.DataFrame, config: TrendConfig) -> pd.DataFrame:
    """Rule 1-2: the violations of one run's ``rows`` against the median of the ``window`` runs
    (history rows, many runs stacked).

    Returns columns ROW_KEY + metric, value, reference, n_ref."""
    cols = list(ROW_KEY) + ["metric", "value", "reference", "n_ref"]
    if window.empty:
        return pd.DataFrame(columns=cols)
    ref_frame = _long(window)
    metrics = [c for c in ref_frame.columns if c not in ROW_KEY]
    ref = ref_frame.groupby(list(ROW_KEY), dropna=False)[metrics].median()
    counts = ref_frame.groupby(list(ROW_KEY), dropna=False)[metrics].count()
    cur = _long(rows).set_index(list(ROW_KEY))
    out = []
    for metric in metrics:
        if metric not in cur.columns:
            continue
        joined = pd.DataFrame({"value": cur[metric]}).join(
            pd.DataFrame({"reference": ref[metric], "n_ref": counts[metric]}), how="inner"
        )
        joined = joined[joined["n_ref"] >= config.min_history].dropna(subset=["value", "reference"])
        if metric in GROW_METRICS:
            bad = joined["value"] > joined["reference"]
        elif metric in FLAG_METRICS:
            bad = (joined["reference"] >= 0.5) & (joined["value"] < 0.5)
        else:
            bad = (joined["value"] > joined["reference"] * (1 + config.threshold)) & (
                joined["value"] - joined["reference"] > config.floor_us
            )
        sel = joined[bad].reset_index()
        sel["metric"] = metric
        out.append(sel)
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def trend(run: RunData, history: pd.DataFrame, config: TrendConfig | None = None) -> TrendResult:
    """Rule 3: tonight's violations, confirmed by the previous run's, over ``history`` (the
    rows of earlier runs of the same device model and suite: :func:`discover_history`)."""
    config = config or TrendConfig()
    tonight = _utc(run)
    older = history[history["run_utc"].fillna(pd.Timestamp.min.tz_localize("UTC")) < tonight] \
        if not history.empty else history
    earlier = _run_order(older)

    def rows_of(ids: list[str]) -> pd.DataFrame:
        return older[older["run_id"].isin(ids)] if ids else older.iloc[0:0]

    findings: list[Finding] = []
    if len(earlier) < config.min_history:
        findings.append(
            Finding(
                Level.NOTE, None,
                f"only {len(earlier)} earlier runs on {run.device_name or run.device}",
                reason=f"the trend needs {config.min_history}; nothing judged tonight",
            )
        )
    now = violations(run.rows, rows_of(earlier[-config.window:]), config)
    prev = (
        violations(rows_of(earlier[-1:]), rows_of(earlier[:-1][-config.window:]), config)
        if earlier
        else now.iloc[0:0]
    )
    prev_keys = {tuple(r) for r in prev[list(ROW_KEY) + ["metric"]].itertuples(index=False, name=None)}
    table = now.copy()
    table["previous_run_violated"] = [
        tuple(r) in prev_keys for r in now[list(ROW_KEY) + ["metric"]].itertuples(index=False, name=None)
    ]
    for rec in table.to_dict("records"):
        key = tuple(rec[c] for c in ROW_KEY)
        metric = rec["metric"]
        value, ref = rec["value"], rec["reference"]
        if metric in FLAG_METRICS:
            value, ref = bool(value), "true"
        why = f"median of the last {int(rec['n_ref'])} runs is {_fmt_ref(ref)}"
        if rec["previous_run_violated"]:
            level, why = Level.REGRESSION, f"{why}; second night in a row"
        else:
            level, why = Level.WARN, f"{why}; first night: flagged if the next run agrees"
        findings.append(Finding(level, key, metric, _fmt_ref(ref), value, why))
    order = {Level.REGRESSION: 0, Level.WARN: 1, Level.NOTE: 2}
    findings.sort(key=lambda f: order[f.level])
    used = rows_of(earlier[-config.window:]).drop_duplicates("run_id")
    return TrendResult(findings, list(used["run_dir"]) if not used.empty else [], table)


def _fmt_ref(value: object) -> object:
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 3)
    return value
