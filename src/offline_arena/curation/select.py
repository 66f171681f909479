"""Subsets of a prompt file as WizardArena builds its test sets (Arena Learning, arXiv 2407.10627, 3.1):

- **diverse** (Offline-Diverse): the prompts' TF-IDF vectors clustered with k-means into N / per_cluster
  clusters, and from each the `per_cluster` prompts nearest its centre; the paper clusters embeddings, and
  TF-IDF is what a laptop has without downloading an encoder;
- **hard** (Offline-Hard): the prompts the model lost most often in the battles stored in a run folder
  (ties count half), ties broken by how many battles the prompt had, then by prompt id; Arena Learning also
  selects its training data this way (battle outcomes beat random, k-means, IFD and INSTAG selection). Or,
  `by="score"`, the prompts where the judge scored the model lowest on average: a single-score judge's
  rating, or the verifier's count of constraints met (so the verifier's failures come first).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from .text import prompt_text


def diverse(prompts: Sequence, n: int, per_cluster: int = 2, seed: int = 0) -> list[int]:
    """Indices of `n` prompts spread over the file's topics (see the module docstring), in file order."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    if n < 1 or per_cluster < 1:
        raise ValueError(f"--diverse needs N >= 1 and per-cluster >= 1, got {n} and {per_cluster}")
    if n >= len(prompts):
        return list(range(len(prompts)))
    vectors = TfidfVectorizer(sublinear_tf=True, min_df=1).fit_transform([prompt_text(p) for p in prompts])
    clusters = max(1, -(-n // per_cluster))
    model = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(vectors)
    distance = model.transform(vectors)[np.arange(vectors.shape[0]), model.labels_]
    members = defaultdict(list)
    for index in np.argsort(distance, kind="stable"):
        members[int(model.labels_[index])].append(int(index))
    chosen: list[int] = []
    for rank in range(max(len(m) for m in members.values())):  # round robin: every cluster's nearest first
        for cluster in sorted(members):
            if rank < len(members[cluster]) and len(chosen) < n:
                chosen.append(members[cluster][rank])
    return sorted(chosen)


def battle_losses(battles, model: str) -> dict[str, tuple[float, int]]:
    """prompt id -> (the model's loss share, battles) over judged battles it fought (ties count half)."""
    lost: dict[str, float] = defaultdict(float)
    fought: dict[str, int] = defaultdict(int)
    for battle in battles:
        if battle.winner == "error" or model not in (battle.model_a, battle.model_b):
            continue
        mine = "model_a" if battle.model_a == model else "model_b"
        fought[battle.prompt_id] += 1
        lost[battle.prompt_id] += 0.5 if battle.winner == "tie" else float(battle.winner != mine)
    return {pid: (lost[pid] / fought[pid], fought[pid]) for pid in fought}


def battle_scores(battles, model: str) -> dict[str, tuple[float, int]]:
    """prompt id -> (minus the model's mean judge score, battles scored), so that `hard` ranks the lowest
    scores first; battles whose judge gave no score are left out."""
    total: dict[str, float] = defaultdict(float)
    scored: dict[str, int] = defaultdict(int)
    for battle in battles:
        if model not in (battle.model_a, battle.model_b):
            continue
        score = battle.score_a if battle.model_a == model else battle.score_b
        if score is None:
            continue
        total[battle.prompt_id] += score
        scored[battle.prompt_id] += 1
    return {pid: (-total[pid] / scored[pid], scored[pid]) for pid in scored}


def hard(prompts: Sequence, n: int, losses: dict[str, tuple[float, int]]) -> list[int]:
    """Indices of the `n` prompts ranked hardest by `losses` (`battle_losses` or `battle_scores`: higher is
    harder), in file order; prompts the model never battled on are not candidates."""
    if n < 1:
        raise ValueError(f"--hard needs N >= 1, got {n}")
    ranked = sorted((i for i, p in enumerate(prompts) if p.id in losses),
                    key=lambda i: (-losses[prompts[i].id][0], -losses[prompts[i].id][1], prompts[i].id))
    if not ranked:
        raise ValueError("no prompt of the file was battled by that model in the run's store")
    return sorted(ranked[:n])
