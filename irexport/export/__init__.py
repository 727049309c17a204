"""ONNX export of routed models: one graph for prefill and decode, with the routing as custom ops."""
