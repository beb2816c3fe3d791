"""ONNX graphs as both sides of the pipeline see them, torch-free: the Q/DQ forms, the CPU INT8 re-encoding,
shape profiles, TensorRT's operator table, readiness check and engine builder, the one place that opens an
onnxruntime session, and the restore graph composed around a network. ``edgeir.export`` writes graphs with
these and ``edgeir.runtime`` runs them, so neither needs the other."""
