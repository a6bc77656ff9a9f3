"""``report.html``: one self-contained page (inline CSS, figures embedded as base64 and linked as files)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2b45;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#c6d0e3;font-size:14px}main{padding:20px 32px;max-width:1200px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 20px;margin:0 0 18px}
h2{font-size:18px;margin:0 0 12px}.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#eef2f9;border-radius:6px;padding:10px 16px;min-width:130px}
.card b{display:block;font-size:22px}.card span{font-size:12px;color:#55607a}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #e3e6ec;padding:5px 10px;text-align:right}
th{background:#f0f2f6}td.l,th.l{text-align:left}.plots{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0}figure img{max-width:520px;width:100%;border:1px solid #e3e6ec;border-radius:4px}
figcaption{font-size:12px;color:#55607a}td.text{max-width:640px;text-align:left;font-size:12px;color:#333}
pre{background:#f0f2f6;padding:10px;border-radius:4px;font-size:12px;overflow:auto;max-height:420px}
.muted{color:#8a93a6;font-size:13px}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_fmt(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _history_table(history: Mapping[str, Sequence[float]]) -> str:
    keys = [k for k in history if not k.startswith("val_")]
    keys += [k for k in history if k.startswith("val_")]
    n = max((len(v) for v in history.values()), default=0)
    rows = [[i + 1] + [float(history[k][i]) if i < len(history[k]) else float("nan") for k in keys] for i in range(n)]
    return _table(["epoch", *keys], rows)


def _figure(folder: Path, file: str, caption: str) -> str:
    data = base64.b64encode((folder / file).read_bytes()).decode("ascii")
    return (f'<figure><a href="{escape(file)}"><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f'</a><figcaption>{escape(caption)} &middot; <a href="{escape(file)}">{escape(file)}</a></figcaption>'
            "</figure>")


def _cards(report: Mapping[str, Any]) -> str:
    cards = []
    test = report.get("test") or {}
    metrics = test.get("metrics", {})
    for key, label in (("accuracy", "test accuracy"), ("auc", "test ROC AUC"), ("macro_auc", "test macro AUC")):
        if key in metrics:
            cards.append((_fmt(metrics[key]), label))
    history = report.get("history") or {}
    for key in ("val_accuracy", "val_loss", "loss"):
        if history.get(key):
            cards.append((_fmt(float(history[key][-1])), f"final {key}"))
    epochs = max((len(v) for v in history.values()), default=0)
    cards.append((str(epochs), "epochs"))
    if report.get("model", {}).get("params") is not None:
        cards.append((_fmt(report["model"]["params"]), "parameters"))
    return '<div class="cards">' + "".join(f"<div class=card><b>{v}</b><span>{escape(k)}</span></div>"
                                          for v, k in cards) + "</div>"


def _examples(test: Mapping[str, Any]) -> str:
    rows = test.get("misclassified") or []
    if not rows:
        return '<p class="muted">No misclassified test examples.</p>'
    labels = test["labels"]
    out = []
    for r in rows:
        text = r.get("text")
        shown = "(text not available)" if text is None else (text if len(text) <= 600 else text[:600] + " …")
        out.append(f'<tr><td>{r["index"]}</td><td class="l">{escape(labels[r["true"]])}</td>'
                   f'<td class="l">{escape(labels[r["predicted"]])}</td><td>{r["probability"]:.3f}</td>'
                   f'<td class="text">{escape(shown)}</td></tr>')
    head = ("<tr><th>#</th><th class=l>true</th><th class=l>predicted</th><th>p(predicted)</th>"
            "<th class=l>text</th></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(out)}</tbody></table>"


def render_html(report: Mapping[str, Any], folder: Path) -> str:
    """The page for a report record (see :func:`lstmtext.report.write_report`); figures are read from ``folder``."""
    model = report.get("model") or {}
    run = report.get("run") or {}
    title = model.get("name") or "model"
    sub = [f"written {report.get('created', '')}"]
    for key in ("saved_at", "device", "seed"):
        if run.get(key) is not None:
            sub.append(f"{key.replace('_', ' ')} {run[key]}")
    parts = [f"<header><h1>Training report: {escape(title)}</h1><p>{escape(' · '.join(sub))}</p></header><main>"]
    parts.append(f"<section><h2>Summary</h2>{_cards(report)}</section>")
    history = report.get("history") or {}
    if history:
        parts.append(f"<section><h2>Metrics per epoch</h2>{_history_table(history)}</section>")
    test = report.get("test")
    if test:
        rows = [[k, v] for k, v in {**test.get("evaluate", {}), **test["metrics"]}.items()]  # ours win ties
        parts.append(f"<section><h2>Test split</h2>{_table(['metric', 'value'], rows)}</section>")
    plots = report.get("plots") or {}
    if plots:
        figs = "".join(_figure(folder, file, caption) for caption, file in plots.items())
        parts.append(f'<section><h2>Plots</h2><div class="plots">{figs}</div></section>')
    if test:
        parts.append(f"<section><h2>Misclassified test examples (most confident first)</h2>{_examples(test)}</section>")
    if model.get("layers"):
        rows = [[la["name"], la["class"], la.get("details", ""), la.get("params", "")] for la in model["layers"]]
        parts.append(f"<section><h2>Model</h2>{_table(['layer', 'class', 'settings', 'params'], rows, left=3)}"
                     "</section>")
    config = {"model": model.get("config"), "run": {k: v for k, v in run.items() if k != "metrics"}}
    parts.append("<section><h2>Configuration</h2><details><summary>config.json and run.json</summary><pre>"
                 f"{escape(json.dumps(config, indent=2, default=str))}</pre></details></section>")
    parts.append("</main>")
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Training report: {escape(title)}</title><style>{_CSS}</style></head><body>"
            + "".join(parts) + "</body></html>\n")
