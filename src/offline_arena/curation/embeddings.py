"""Paraphrased evaluation items, found by the cosine similarity of sentence embeddings (opt-in).

N-gram rules miss an item reworded (LMSYS's llm-decontaminator, arXiv 2311.04850). This step embeds each
prompt and each evaluation item with an encoder the user already has in a LOCAL folder (nothing is
downloaded; a Hub id is refused) and flags a prompt whose best item has cosine >= a threshold.

Embeddings follow the sentence-transformers convention: the encoder's last hidden state, mean-pooled over
the attention mask, L2-normalised, so a dot product is the cosine. That is how all-MiniLM-L6-v2 and the e5
models were trained (e5 also expects a "query: " prefix, not added here); bge was trained with CLS pooling,
so its mean-pooled cosines run differently: choose the threshold for the encoder you use. A folder holding a
causal LM (a `...ForCausalLM` checkpoint) loads its base model (AutoModel) and works the same way, if less well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .eval_sets import EvalItem

MAX_LENGTH = 512     # tokens per text, at most (and never more than the model's own limit)
CHUNK = 4096         # prompts embedded and compared at a time: a 4096 x items block, never prompts x items


@dataclass(frozen=True)
class EmbeddingRule:
    """What `decontaminate(..., embedding=...)` checks the prompts the n-gram rules kept with; as a Match's
    rule it prints "embedding cosine >= 0.90" (the Match's share is then the cosine)."""
    model_path: str
    threshold: float = 0.9

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"embedding threshold {self.threshold}: a cosine in (0, 1], e.g. 0.9")
        local_folder(self.model_path)  # a wrong path fails now, not after the n-gram pass

    def __str__(self) -> str:
        t = self.threshold
        return f"embedding cosine >= {t:.2f}" if round(t, 2) == t else f"embedding cosine >= {t:g}"


def local_folder(model_path: str | Path) -> Path:
    path = Path(model_path).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ValueError(f"embedding model {str(model_path)!r} is not a local model folder (a folder with "
                         "config.json and weights, e.g. a saved all-MiniLM-L6-v2); nothing is downloaded")
    return path


class Encoder:
    """A local encoder folder loaded once (tokenizer and base model), on the GPU when there is one."""

    def __init__(self, model_path: str | Path):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = local_folder(model_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"embedding model {str(model_path)!r}: cannot load it as a tokenizer and model "
                             f"({error})") from None
        if self.tokenizer.pad_token is None:  # decoder folders often have none: pads are masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"  # a causal model's real tokens keep their positions
        limits = [MAX_LENGTH, self.tokenizer.model_max_length,
                  getattr(self.model.config, "max_position_embeddings", None) or MAX_LENGTH]
        self.max_length = int(min(limits))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()

    def embed(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False, bar=None) -> np.ndarray:
        """(len(texts), hidden) float32, each row of unit length; texts go in batches of similar length."""
        import torch
        from tqdm import tqdm

        hidden = self.model.config.hidden_size
        out = np.zeros((len(texts), hidden), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        own = bar is None and progress
        bar = tqdm(total=len(texts), desc="embed", unit="text") if own else bar
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] or " " for i in rows], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                states = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(torch.float32)
                pooled = (states.to(torch.float32) * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.cpu().numpy()
                if bar is not None:
                    bar.update(len(rows))
        if own:
            bar.close()
        return out


def embed(texts: Sequence[str], model_path: str | Path, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """Sentence embeddings of `texts` from the encoder in the local folder `model_path`: mean pooling of the
    last hidden state over the attention mask, L2-normalised (rows of unit length; dot product = cosine),
    each text truncated at the model's maximum length (512 tokens at most)."""
    return Encoder(model_path).embed(texts, batch_size, progress)


def paraphrase_matches(prompt_texts: Sequence[str], items: Sequence[EvalItem], model_path: str | Path,
                       threshold: float = 0.9, batch_size: int = 32,
                       progress: bool = False) -> list[tuple[int, EvalItem, float]]:
    """(prompt index, its most similar item, cosine) for each prompt whose most similar evaluation item has
    cosine >= `threshold`. Prompts are embedded and compared CHUNK at a time, so 276K prompts against 3K items
    never hold a 276K x 3K matrix (nor all prompt embeddings) at once."""
    from tqdm import tqdm

    if not prompt_texts or not items:
        return []
    encoder = Encoder(model_path)
    reference = encoder.embed([item.text for item in items], batch_size)
    found = []
    with tqdm(total=len(prompt_texts), desc="embedding check", unit="prompt", disable=not progress) as bar:
        for start in range(0, len(prompt_texts), CHUNK):
            vectors = encoder.embed(prompt_texts[start:start + CHUNK], batch_size, bar=bar)
            similarity = vectors @ reference.T
            best = similarity.argmax(axis=1)
            cosine = similarity[np.arange(len(best)), best]
            for offset in np.flatnonzero(cosine >= threshold):
                found.append((start + int(offset), items[int(best[offset])], float(cosine[offset])))
    return found
