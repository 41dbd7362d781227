"""The report's HTML pages: index, cohort and one page per subject.

Pages are plain HTML with an inline style sheet, no scripts and no external files
(figures are ``data:`` URIs), so the folder opens offline and can be mailed as is.
Every text from the tables is escaped.  Pages link to each other by relative links;
a flagged scan links to ``sub-<id>.html#ses-<label>``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mriproc.report.flags import PARTICIPANT_ANCHOR, Flag

__all__ = [
    "COHORT_PAGE",
    "INDEX_PAGE",
    "SubjectSummary",
    "VisitSection",
    "cohort_page",
    "index_page",
    "subject_page",
]

INDEX_PAGE = "index.html"
COHORT_PAGE = "cohort.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 84em; color: #222;
  padding: 0 1em; }
nav { margin-bottom: 1em; font-size: 0.95em; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.88em; }
th, td { border-top: 1px solid #bbb; border-bottom: 1px solid #bbb; padding: 0.25em 0.6em;
  text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
section { border-top: 2px solid #ddd; margin-top: 1.2em; padding-top: 0.4em; }
.flag { background: #fff0f0; border-left: 4px solid #c00; padding: 0.4em 0.8em; margin: 0.5em 0; }
.note { background: #fffbe6; border-left: 4px solid #d9a400; padding: 0.3em 0.8em;
  margin: 0.4em 0; }
.na { color: #a00; }
.flagged { color: #a00; background: #fff0f0; font-weight: bold; }
.ok { color: #070; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: Sequence[str], *, up: bool = True) -> str:
    nav = (
        f'<nav><a href="{INDEX_PAGE}">Index</a> · <a href="{COHORT_PAGE}">Cohort</a></nav>'
        if up
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{nav}\n"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table; cells are HTML already (escape text with :func:`_e` first)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{_e(n)}</p>' for n in notes)


def _flag_box(flag: Flag | None) -> str:
    if flag is None:
        return ""
    items = "".join(f"<li>{_e(r)}</li>" for r in flag.reasons)
    return f'<div class="flag"><strong>Flagged</strong><ul>{items}</ul></div>'


def _flag_rows(flags: Sequence[Flag]) -> list[list[str]]:
    return [
        [
            f'<a href="{_e(f.link)}">{_e(f.participant_id)} {_e(f.session or "(participant)")}</a>',
            "<br>".join(_e(r) for r in f.reasons),
        ]
        for f in flags
    ]


@dataclass(frozen=True)
class VisitSection:
    """What a subject page shows for one visit."""

    session: str
    visit_month: float | None
    endpoint_rows: Sequence[Sequence[str]]
    mosaic_uri: str | None
    notes: Sequence[str]
    qc: Mapping[str, object] = field(default_factory=dict)
    flag: Flag | None = None


@dataclass(frozen=True)
class SubjectSummary:
    """One line of the index: a subject, its arm, visits and flagged scans."""

    participant_id: str
    arm: str | None
    sessions: Sequence[str]
    flagged: int


def _visit_html(visit: VisitSection) -> str:
    month = "" if visit.visit_month is None else f" (month {visit.visit_month:g})"
    parts = [f'<section id="{_e(visit.session)}">', f"<h2>{_e(visit.session)}{_e(month)}</h2>"]
    parts.append(_flag_box(visit.flag))
    if visit.mosaic_uri:
        parts.append(_image(visit.mosaic_uri, f"{visit.session} mosaic"))
    parts.append(_notes(visit.notes))
    if visit.qc:
        parts.append(
            "<p>Registration quality: "
            + _e(
                ", ".join(
                    f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in sorted(visit.qc.items())
                )
            )
            + "</p>"
        )
    if visit.endpoint_rows:
        parts.append(_table(["endpoint", "value", "unit", "status"], visit.endpoint_rows))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def subject_page(
    participant_id: str,
    arm: str | None,
    trajectory_uri: str | None,
    visits: Sequence[VisitSection],
    participant_flag: Flag | None,
) -> str:
    """A subject's page: trajectories, then one section per visit (id = session label)."""
    body = [
        f"<p>Arm: {_e(arm or 'not given')}. Visits: "
        + ", ".join(f'<a href="#{_e(v.session)}">{_e(v.session)}</a>' for v in visits)
        + ".</p>"
    ]
    body.append(f'<div id="{PARTICIPANT_ANCHOR}">{_flag_box(participant_flag)}</div>')
    body.append("<h2>Trajectories</h2>")
    if trajectory_uri:
        body.append(
            _image(trajectory_uri, f"{participant_id} PCF and T2 lesion volume over visits")
        )
        body.append("<p>Grey crosses on the axis: visits whose value is n/a (reason below).</p>")
    else:
        body.append(_notes(["trajectories not available: no endpoint rows for this subject"]))
    body += [_visit_html(v) for v in visits]
    return _page(participant_id, body)


def index_page(
    subjects: Sequence[SubjectSummary], flags: Sequence[Flag], stats_link: str | None
) -> str:
    """The entry page: links to the cohort page and to every subject page."""
    scans = sum(len(s.sessions) for s in subjects)
    body = [
        f"<p>{len(subjects)} participant(s), {scans} scan(s), {len(flags)} flagged "
        f'(listed on the <a href="{COHORT_PAGE}#flagged">cohort page</a>).</p>',
        f'<p><a href="{COHORT_PAGE}">Cohort: endpoint distributions by arm, errors, flagged '
        "scans</a></p>",
    ]
    if stats_link:
        body.append(f'<p><a href="{_e(stats_link)}">Trial statistics (mriproc stats)</a></p>')
    body.append("<h2>Subjects</h2>")
    body.append(
        _table(
            ["participant", "arm", "visits", "flagged scans"],
            [
                [
                    f'<a href="{_e(s.participant_id)}.html">{_e(s.participant_id)}</a>',
                    _e(s.arm or "not given"),
                    _e(", ".join(s.sessions)),
                    f'<span class="{"na" if s.flagged else "ok"}">{s.flagged}</span>',
                ]
                for s in subjects
            ],
        )
    )
    return _page("mriproc QC report", body, up=False)


def cohort_page(
    distributions_uri: str | None,
    arms: Sequence[str],
    errors: Sequence[Sequence[str]],
    flags: Sequence[Flag],
    notes: Sequence[str],
) -> str:
    """Endpoint distributions by arm, the error list and the flagged scans."""
    body = [_notes(notes), "<h2>Endpoint distributions by arm</h2>"]
    if distributions_uri:
        body.append(_image(distributions_uri, "endpoint distributions by arm and visit"))
        body.append(
            f"<p>Arms: {_e(', '.join(arms))}. Each dot is one scan with status ok; the bar is the "
            "arm's median at that visit. n/a values are not drawn (they are listed below).</p>"
        )
    else:
        body.append(_notes(["distributions not available: no endpoint has a value"]))
    body.append('<h2 id="errors">Errors (errors.tsv)</h2>')
    body.append(
        _table(["scan", "stage", "reason", "crash file"], errors) if errors else "<p>None.</p>"
    )
    body.append('<h2 id="flagged">Flagged scans</h2>')
    body.append(_table(["scan", "why"], _flag_rows(flags)) if flags else "<p>None.</p>")
    return _page("Cohort", body)
