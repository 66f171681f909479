"""Evaluation suites (see suites.py): `verifiable` (the built-in held-out split, IFEval's four numbers with
bootstrap CIs), `ifbench`, `mtbench` (LLM-judged, two turns) and `arena` (Elo against a fixed panel)."""
