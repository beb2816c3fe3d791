"""report.md: one table of every stage of a compression run, next to the teacher and the naive baseline."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("steps", "params", "macs", "latency_ms", "psnr", "ssim", "haarpsi", "detail", "psnr_vs_teacher",
           "size_mb")
HEADERS = ("steps", "params", "GMACs / image", "latency ms", "PSNR", "SSIM", "HaarPSI", "detail",
           "PSNR vs teacher", "size MB")


# A latent restorer's autoencoder runs once per image, outside the UNet's steps: its own column.
CODEC = ("codec_macs", "autoencoder GMACs / image")


def _columns(report: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "decoder_macs" not in report["teacher"]:
        return COLUMNS, HEADERS
    at = COLUMNS.index("macs") + 1
    return COLUMNS[:at] + CODEC[:1] + COLUMNS[at:], HEADERS[:at] + CODEC[1:] + HEADERS[at:]


def _fmt(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "params":
        return f"{value / 1e6:.2f}M"
    if key in ("macs", "codec_macs"):
        return f"{value / 1e9:.3g}"
    if key in ("psnr", "psnr_vs_teacher"):
        return f"{value:.2f}"
    if key in ("latency_ms", "size_mb"):
        return f"{value:.1f}" if value >= 1 else f"{value:.2f}"
    if key == "steps":
        return str(value)
    return f"{value:.4f}"


def _headers(report: dict) -> list[str]:
    timed = report["teacher"].get("latency_backend")
    return [f"{h} ({timed})" if key == "latency_ms" and timed else h for key, h in zip(*_columns(report))]


def rows(report: dict) -> list[tuple[str, dict]]:
    """(label, metrics) for the baseline, the teacher and every finished stage, in order."""
    out = []
    if report.get("baseline"):
        out.append(("naive baseline", report["baseline"]))
    out.append(("teacher", report["teacher"]))
    for s in report["stages"]:
        out.append((s["stage"], {**s["metrics"], "size_mb": s.get("size_mb")}))
    return [(label, {**m, "codec_macs": m["decoder_macs"] + m.get("encoder_macs", 0)} if "decoder_macs" in m
             else m) for label, m in out]


def render(report: dict, images: list[str]) -> str:
    recipe = report["recipe"]
    lines = [f"# Compression report: {recipe['name']}", "",
             f"Model `{report['model']}`, task `{recipe['task']}`, status **{report['status']}**"
             + (f": {report['failure']}" if report.get("failure") else "") + ".", "",
             "| stage | " + " | ".join(_headers(report)) + " |"]
    columns, _ = _columns(report)
    lines.append("|---" * (len(columns) + 1) + "|")
    for label, m in rows(report):
        lines.append(f"| {label} | " + " | ".join(_fmt(k, m.get(k)) for k in columns) + " |")
    size = report["stages"][0]["metrics"]["eval_size"] if report["stages"] else report["teacher"]["eval_size"]
    lines += ["", (f"Metrics are means over the held-out images ({size[0]}x{size[1]} crops). PSNR/SSIM: Y channel, "
                   "BasicSR convention. Detail: high-frequency energy relative to ground truth. PSNR vs teacher: "
                   "against the teacher's output from the same noise. Latency: median time of one whole restoration of "
                   "the first held-out image on the machine that ran the pipeline, every network (FP32 exported "
                   "from torch, or the INT8 graph) run by onnxruntime on the CPU, the teacher and every stage "
                   "timed together in rounds when the run completed or a gate stopped it (an interrupted run "
                   "has none); the naive baseline is its own function. Size: the smallest deployable file."), ""]
    for s in report["stages"]:
        gates = s.get("gates") or []
        if gates:
            verdicts = ", ".join(f"{g['gate']} {g['value']:.4g} (limit {g['limit']:g}: "
                                 f"{'pass' if g['passed'] else 'FAIL'})" for g in gates)
            lines.append(f"- {s['stage']} gates: {verdicts}")
    for key, t in (report.get("targets") or {}).items():
        measured = "—" if t["measured"] is None else f"{t['measured']:.4g}"
        lines.append(f"- target {key}: measured {measured}, target {t['target']:g} "
                     f"({'met' if t['met'] else 'not met'})")
    lines.append("")
    lines += [f"![{Path(p).stem}]({p})" for p in images]
    return "\n".join(lines) + "\n"
