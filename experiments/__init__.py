"""The paper's experiments on LSP: sweeps (run.py), their report (report.py) and the extra
measurements (flip.py, heatmaps.py, latency.py); run each as ``python -m experiments.NAME``."""
