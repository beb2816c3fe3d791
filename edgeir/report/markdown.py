"""report.md: one table of every stage of a compression run, next to the teacher and the naive baseline."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("steps", "params", "macs", "latency_ms", "psnr", "ssim", "haarpsi", "detail", "psnr_vs_teacher",
           "size_mb")
HEADERS = ("steps", "params", "GMACs / image", "latency ms", "PSNR", "SSIM", "HaarPSI", "detail",
           "PSNR vs teacher", "size MB")


def _fmt(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "params":
        return f"{value / 1e6:.2f}M"
    if key == "macs":
        return f"{value / 1e9:.3g}"
    if key in ("psnr", "psnr_vs_teacher"):
        return f"{value:.2f}"
    if key in ("latency_ms", "size_mb"):
        return f"{value:.1f}" if value >= 1 else f"{value:.2f}"
    if key == "steps":
        return str(value)
    return f"{value:.4f}"


def rows(report: dict) -> list[tuple[str, dict]]:
    """(label, metrics) for the baseline, the teacher and every finished stage, in order."""
    out = []
    if report.get("baseline"):
        out.append(("naive baseline", report["baseline"]))
    out.append(("teacher", report["teacher"]))
    for s in report["stages"]:
        out.append((s["stage"], {**s["metrics"], "size_mb": s.get("size_mb")}))
    return out


def render(report: dict, images: list[str]) -> str:
    recipe = report["recipe"]
    lines = [f"# Compression report: {recipe['name']}", "",
             f"Model `{report['model']}`, task `{recipe['task']}`, status **{report['status']}**"
             + (f": {report['failure']}" if report.get("failure") else "") + ".", "",
             "| stage | " + " | ".join(HEADERS) + " |", "|---" * (len(HEADERS) + 1) + "|"]
    for label, m in rows(report):
        lines.append(f"| {label} | " + " | ".join(_fmt(k, m.get(k)) for k in COLUMNS) + " |")
    timing = ("the teacher and every stage timed together in rounds on the first held-out image at the end of the "
              "run" if report["status"] == "completed" else "each stage timed as it finished")
    size = report["stages"][0]["metrics"]["eval_size"] if report["stages"] else report["teacher"]["eval_size"]
    lines += ["", (f"Metrics are means over the held-out images ({size[0]}x{size[1]} crops). PSNR/SSIM: Y channel, "
                   "BasicSR convention. Detail: high-frequency energy relative to ground truth. PSNR vs teacher: "
                   "against the teacher's output from the same noise. Latency: median time of one whole restoration "
                   f"on the machine that ran the pipeline, {timing} (torch eager; onnxruntime for INT8 stages, whose "
                   "network is an ONNX graph). Size: the smallest deployable file."), ""]
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
