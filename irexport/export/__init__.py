"""ONNX export of routed models: prefill and decode graphs with the routing as custom ops."""
