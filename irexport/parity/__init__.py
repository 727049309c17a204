"""Parity of exported backends against the PyTorch reference, routing-aware, with Polygraphy."""
