"""Train a shipped teacher: ``python tools/train_teacher.py sr4x -o edgeir/weights/sr4x --iters ...``.

The same as ``edgeir train``; kept in tools/ because it is a long run (about an hour on 2 CPU cores, minutes on
one GPU). The exact commands used for the shipped teachers are in docs/BENCHMARKS.md.
"""

from edgeir.cli import train_cmd

if __name__ == "__main__":
    train_cmd()
