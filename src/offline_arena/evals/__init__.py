"""Evaluation: verifiable held-out accuracy (IFEval's four numbers) with bootstrap CIs, runaway rate."""
