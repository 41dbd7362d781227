"""The readable summary of the analysis, as Markdown and as self-contained HTML.

Both are rendered from one list of blocks (headings, paragraphs, tables, lists), so
they say the same thing: Table 1 (baseline characteristics by arm), Table 2
(between-arm comparisons with each test's name and formula), Table 3 (change from
baseline by arm and visit), Table 4 (subgroups) and the values left out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mriproc.stats.analysis import TrialAnalysis
from mriproc.stats.comparisons import followup_visits
from mriproc.stats.formatting import estimate_text, p_text
from mriproc.stats.outcomes import COUNT_OUTCOMES

__all__ = ["Block", "render_html", "render_markdown", "summary_blocks"]


@dataclass(frozen=True)
class Block:
    """One piece of the summary: ``kind`` is heading, paragraph, table or list."""

    kind: str
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    items: Sequence[str] = field(default_factory=tuple)


def _heading(text: str) -> Block:
    return Block("heading", text)


def _paragraph(text: str) -> Block:
    return Block("paragraph", text)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# --------------------------------------------------------------------------- tables


def _by_arm(rows: pd.DataFrame) -> dict[str, dict[Hashable, Any]]:
    return {str(r["arm"]): r for r in rows.to_dict(orient="records")}


def _n_text(record: dict[Hashable, Any]) -> str:
    """`` (n = 12)`` or `` (n = 12, 3 n/a)``."""
    excluded = int(record["excluded"])
    return f" (n = {int(record['n'])}" + (f", {excluded} n/a)" if excluded else ")")


def _baseline_block(analysis: TrialAnalysis) -> Block:
    table = analysis.baseline
    arms = analysis.data.arms
    rows: list[list[str]] = []
    keys = table[["section", "variable", "level", "unit"]].drop_duplicates()
    for key in keys.to_dict(orient="records"):
        section, variable, level, unit = (
            str(key[c]) for c in ("section", "variable", "level", "unit")
        )
        chosen = table[
            (table["section"] == section)
            & (table["variable"] == variable)
            & (table["level"] == level)
        ]
        by_arm = _by_arm(chosen)
        if section == "participants":
            label = "Participants, n"
        elif section == "scans":
            label = f"Scans, n ({level})"
        elif section == "covariate":
            label = (
                f"{variable}: {level}, n (%)" if level else f"{variable}, mean ± SD; median [IQR]"
            )
        else:
            label = f"{variable} ({unit}), mean ± SD; median [IQR]"
        cells = []
        for arm in arms:
            record = by_arm.get(arm)
            if record is None:
                cells.append("")
                continue
            summary = _cell(record["summary"])
            if section == "endpoint" or (section == "covariate" and not level):
                summary += _n_text(record)
            cells.append(summary)
        rows.append([label, *cells])
    return Block("table", header=["Characteristic", *arms], rows=rows)


def _comparison_blocks(analysis: TrialAnalysis) -> list[Block]:
    table = analysis.comparisons
    blocks: list[Block] = []
    notes: list[str] = []
    for arm, chosen in table.groupby("arm", sort=False, dropna=False):
        reference = analysis.data.reference_arm
        rows = []
        for row in chosen.to_dict(orient="records"):
            number = len(notes) + 1
            marker = ""
            if row["note"]:
                notes.append(f"[{number}] {row['outcome']}, {row['test']}: {row['note']}")
                marker = f" [{number}]"
            rows.append(
                [
                    str(row["outcome"]),
                    str(row["visits"]),
                    f"{row['test']}: `{row['formula']}`"
                    if _cell(row["formula"])
                    else _cell(row["test"]),
                    _cell(row["reference_summary"]),
                    _cell(row["arm_summary"]),
                    _cell(row["estimand"]),
                    estimate_text(row["estimate"], row["ci_low"], row["ci_high"], digits=3)
                    + marker,
                    p_text(row["p_value"]),
                ]
            )
        if isinstance(arm, str):
            blocks.append(_paragraph(f"**{arm} versus {reference}**"))
        blocks.append(
            Block(
                "table",
                header=[
                    "Outcome",
                    "Visit(s)",
                    "Test: formula",
                    reference,
                    arm if isinstance(arm, str) else "",
                    "Estimand",
                    "Estimate (95 % CI)",
                    "P",
                ],
                rows=rows,
            )
        )
    if notes:
        blocks.append(Block("list", items=notes))
    return blocks


def _change_block(analysis: TrialAnalysis) -> Block:
    table = analysis.change
    arms = analysis.data.arms
    rows = []
    for (endpoint, session), chosen in table.groupby(["endpoint", "session"], sort=False):
        by_arm = _by_arm(chosen)
        first = by_arm[arms[0]]
        cells = [f"{by_arm[arm]['summary']}{_n_text(by_arm[arm])}" for arm in arms]
        rows.append([f"{endpoint} ({first['unit']}): {first['quantity']}", str(session), *cells])
    return Block("table", header=["Endpoint", "Visit", *arms], rows=rows)


def _subgroup_block(analysis: TrialAnalysis) -> Block:
    table = analysis.subgroups
    rows = []
    for row in table.to_dict(orient="records"):
        rows.append(
            [
                f"{row['subgroup']}: {row['level']}",
                f"{row['outcome']} ({row['visits']})",
                str(row["test"]),
                f"{row['n_reference']} / {row['n_arm']}",
                f"{row['estimand']}: "
                + estimate_text(row["estimate"], row["ci_low"], row["ci_high"], digits=3),
                p_text(row["p_value"]),
                f"{p_text(row['interaction_p'])} (`{row['interaction_formula']}`)",
            ]
        )
    return Block(
        "table",
        header=[
            "Subgroup",
            "Outcome",
            "Test",
            "n (reference / arm)",
            "Estimate (95 % CI)",
            "P",
            "Interaction P (model)",
        ],
        rows=rows,
    )


def _exclusion_block(analysis: TrialAnalysis) -> Block:
    rows = [
        [str(r[c]) for c in ("endpoint", "session", "arm", "reason", "scans")]
        for r in analysis.exclusions.to_dict(orient="records")
    ]
    return Block("table", header=["Endpoint", "Session", "Arm", "Reason", "Scans"], rows=rows)


def summary_blocks(analysis: TrialAnalysis, *, inputs: dict[str, str]) -> list[Block]:
    """The summary's content: ``inputs`` maps a role (endpoints, participants) to its file."""
    data = analysis.data
    reference = data.reference_arm
    others = ", ".join(data.arms[1:]) or "none"
    blocks = [
        _heading("Trial analysis (mriproc stats)"),
        _paragraph(
            "Inputs: " + "; ".join(f"{role} `{path}`" for role, path in inputs.items()) + "."
        ),
        _paragraph(
            f"Arms: {', '.join(data.arms)}. Reference arm: **{reference}**; each other arm "
            f"({others}) is compared with it. Differences are the other arm minus "
            f"{reference}; ratios (rate and odds ratios) are the other arm over {reference}. "
            f"Baseline: {data.session_label(data.baseline_month)}; follow-up visits: "
            f"{followup_visits(data)}. 95 % confidence intervals; two-sided P values."
        ),
        _paragraph(
            "Only values with status `ok` enter the statistics. A value that is n/a is "
            "left out, never counted as zero; each table gives the number of values left "
            "out, and the last table lists them with the reason."
        ),
        _heading("Table 1. Baseline characteristics by arm"),
        _baseline_block(analysis),
        _paragraph("Baseline differences are described, not tested: the arms are randomised."),
        _heading("Table 2. Between-arm comparisons"),
        _paragraph(
            "Change outcomes at each follow-up visit: Welch's t-test, and ANCOVA adjusted "
            "for the outcome's baseline value (PCF for the PCF change, BPF for PBVC) and "
            "the baseline CEL count. Cumulative counts (summed over the follow-up visits): "
            "negative binomial regression with the number of usable follow-up scans as "
            "exposure, and the Wilcoxon rank-sum test of the count per scan as sensitivity "
            "analysis (its estimate is the probability that a value of the other arm "
            "exceeds one of the reference arm, 0.5 meaning no difference). Active scans: "
            "logistic GEE over all follow-up scans, clustered by participant, and Fisher's "
            "exact test of the participants with at least one active scan. "
            + "; ".join(
                f"`{count.name}` = sum of `{count.definition}` over {followup_visits(data)}"
                for count in COUNT_OUTCOMES
            )
            + " (new and enlarging lesions versus the previous visit)."
        ),
        *_comparison_blocks(analysis),
        _heading("Table 3. Change from baseline by arm and visit"),
        _change_block(analysis),
        _heading("Table 4. Subgroup analyses"),
    ]
    if analysis.subgroups.empty:
        blocks.append(
            _paragraph(
                "None: they need two arms, a follow-up visit and at least one of the "
                "participants.tsv columns sex, edss, relapses_2y."
            )
        )
    else:
        blocks += [
            _paragraph(
                "Within each level: Welch's t-test for the change outcomes at the last "
                "visit, negative binomial regression for the cumulative counts. The "
                "interaction P value is the Wald test of the arm x subgroup terms of the "
                "model shown, over all levels. Subgroup results are exploratory."
            ),
            _subgroup_block(analysis),
        ]
    blocks.append(_heading("Values left out"))
    if analysis.exclusions.empty:
        blocks.append(_paragraph("None: every value has status ok."))
    else:
        blocks.append(_exclusion_block(analysis))
    return blocks


# --------------------------------------------------------------------------- rendering


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown."""
    lines: list[str] = []
    for i, block in enumerate(blocks):
        if block.kind == "heading":
            lines.append(("# " if i == 0 else "## ") + block.text)
        elif block.kind == "paragraph":
            lines.append(block.text)
        elif block.kind == "list":
            lines.extend(f"- {item}" for item in block.items)
        else:
            lines.append("| " + " | ".join(_markdown_cell(h) for h in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines.extend(
                "| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in block.rows
            )
        lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    """HTML of a text with `code` and **bold** spans, escaped."""
    out: list[str] = []
    for i, part in enumerate(text.split("`")):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        pieces = html.escape(part).split("**")
        out.append("".join(f"<b>{p}</b>" if j % 2 else p for j, p in enumerate(pieces)))
    return "".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-top: 1px solid #bbb; border-bottom: 1px solid #bbb; padding: 0.3em 0.6em;
  text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
code { font-size: 0.95em; background: #f6f6f6; }
"""


def render_html(blocks: Sequence[Block]) -> str:
    """A self-contained HTML page (no scripts, no external files)."""
    title = blocks[0].text if blocks and blocks[0].kind == "heading" else "mriproc stats"
    body: list[str] = []
    for i, block in enumerate(blocks):
        if block.kind == "heading":
            tag = "h1" if i == 0 else "h2"
            body.append(f"<{tag}>{_inline(block.text)}</{tag}>")
        elif block.kind == "paragraph":
            body.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in block.items) + "</ul>")
        else:
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>\n"
                for row in block.rows
            )
            body.append(
                f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"
            )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
