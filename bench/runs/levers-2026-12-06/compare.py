"""Writes README.md: the lever runs of this directory side by side (run from here)."""
import json

ORDER = [
    ("before-1", "before"), ("before-2", "before"), ("before-3", "before"),
    ("compact-1", "compact views"), ("compact-2", "compact views"),
    ("closing-index-only-when-retiring", "+ c/ only when retiring"),
    ("deadline-index", "+ deadline index"),
]
NAMES = [
    "raw JetStream publish, with message ids",
    "unary Append until applied (median pair): CPU an event",
    "unary Append until applied CPU / limit pipeline CPU",
    "AppendBatch until applied (median pair): CPU an event",
    "AppendBatch until applied CPU / its limit",
    "rebuild / raw consumer (1c)",
    "projection alone: decode, fold and seal",
    "projection alone: sled applying the sealed batches",
    "projection alone, batches of 5000: CPU an event",
    "projection alone, batches of 100: CPU an event",
    "projection CPU an event, batches of 100 / batches of 5000",
    "ListOpenClocks, 1 rows, p50",
    "ListOpenClocks, 50 rows, p50",
    "ListOpenClocks, 50 rows, p99",
]
HEAD = """# Lever runs of 2026-12-06 (issue 23)

Main-server sections only (`--skip-scale --skip-sync-always --scale-out`), one after another on the recording machine, to measure what each change to the views bought. Each column is a run whose JSON is in this directory; `compare.py` writes this table from them. Not full runs: `baton-bench docs` does not read this directory.

- before: commit 54fe1c3 (the limit-pipeline rows on f56ce9b) with section 4l added, views as at f56ce9b.
- compact views: views keep what clocks read; the closing index written for every hand-off (commit 9177ff9).
- + c/ only when retiring: the closing index only with --views-retention (walk by next due).
- + deadline index: lists walk hand-offs by earliest running deadline (commit 49bad26).
"""


def fmt(v):
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def main():
    runs = {k: {r["name"]: r for r in json.load(open(k + ".json"))["rows"]} for k, _ in ORDER}
    out = [HEAD, "| row | " + " | ".join(label for _, label in ORDER) + " | unit |",
           "|---|" + "---:|" * len(ORDER) + "---|"]
    for name in NAMES:
        cells, unit = [], ""
        for k, _ in ORDER:
            r = runs[k].get(name) or runs[k].get(name.replace("1 rows", "1 row"))
            cells.append(fmt(r["value"]) if r else "")
            unit = r["unit"] if r else unit
        out.append(f"| {name} | " + " | ".join(cells) + f" | {unit} |")
    open("README.md", "w").write("\n".join(out) + "\n")


main()
