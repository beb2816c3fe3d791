"""Training shipped teachers (tools/train_teacher.py and ``edgeir train``)."""
