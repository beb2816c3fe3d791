"""Step 3 of the pipeline: deployable graphs (ONNX for the UNet and for the whole sampler loop; TensorRT
engines where TensorRT exists)."""
