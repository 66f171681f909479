"""`arena report`: a real pico-model run (the pipeline's own test set-up: pico target and opponent, a random
pico reward model as the judge), its HTML report opened in headless Chromium; plus the report of a
partly finished run, of a big store (size caps), and the pure pieces (win rates, JSON embedding)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from offline_arena.cli import main
from offline_arena.judges.base import Verdict, judgment_key
from offline_arena.models.base import Completion, SamplingParams
from offline_arena.records import Battle
from offline_arena.report import write_report
from offline_arena.report.battle_data import BattleLimits
from offline_arena.report.matrix import win_matrix
from offline_arena.report.render import embed_json
from offline_arena.store import Store, completion_key

OPPONENT = "other@best-of-2"
XSS_ANSWER = "<script>alert(1)</script> & <b>not bold</b>"
XSS_BATTLE = "xss-battle"


def _add_battle(store: Store, battle_id: str, tag: str, model_a: str, model_b: str, text_a: str, text_b: str,
                judge: str | None = None, verdict: Verdict | None = None, prompt: str = "a prompt") -> None:
    """One battle written through the store's own API, as `arena battle` and `arena judge` would."""
    params = SamplingParams(max_new_tokens=8)
    messages = [{"role": "user", "content": prompt}]
    key_a = completion_key(f"test:{model_a}", prompt, params, 0, 0)
    key_b = completion_key(f"test:{model_b}", prompt, params, 0, 0)
    store.put_completions([(key_a, f"test:{model_a}", prompt, params, 0, 0, Completion(text_a, True, 9)),
                           (key_b, f"test:{model_b}", prompt, params, 0, 0, Completion(text_b, False, 8))])
    store.put_battles([Battle(battle_id, tag, battle_id, tuple(messages), {}, model_a, model_b, key_a, key_b,
                              Completion(text_a, True, 9), Completion(text_b, False, 8))])
    if verdict is not None:
        key = judgment_key(judge, messages, key_a, key_b)
        store.put_judgments([(key, judge, verdict)])
        store.link_judgments([(battle_id, judge, key)])


@pytest.fixture(scope="module")
def pico_run(tmp_path_factory, smol_tokenizer_dir, pico_model_dir, pico_reward_dir) -> Path:
    """Two rounds of an SFT stage on pico models through `arena run` (about a minute on 2 cores), plus one
    hand-made battle whose answer, prompt and judge output carry markup that must stay text."""
    from conftest import build_pico_model
    from test_pipeline import write_recipe

    folder = tmp_path_factory.mktemp("report_run")
    opponent_dir = build_pico_model(smol_tokenizer_dir, folder / "opponent", seed=7)
    keep = {"require_stopped": False, "require_passing": False}  # a random pico model never stops nor passes
    tiny = {"max_steps": 1, "batch_size": 2, "max_length": 96, "learning_rate": 1e-4, "runaway_tolerance": 1.0,
            "probe_prompts": 2}
    recipe = write_recipe(
        folder / "pico.yaml", name="report-pico", target=str(pico_model_dir), judge=f"rm:{pico_reward_dir}",
        opponents=[{"name": OPPONENT, "model": f"{opponent_dir}@best-of-2"}], rounds=2,
        prompts={"per_stage": 4, "heldout": 4}, generation={"max_new_tokens": 8, "batch_size": 8},
        stages=[{"kind": "sft", "train": tiny, "min_rows": 1, "data": keep}],
        evaluation={"bootstrap_rounds": 10})
    run_dir = folder / "run"
    started = time.perf_counter()
    assert main(["run", str(recipe), "--run-dir", str(run_dir)]) == 0
    print(f"pico run: {time.perf_counter() - started:.1f}s")
    assert (run_dir / "report.html").is_file()  # `arena run` writes the report as its last act
    with Store(run_dir / "store.sqlite") as store:
        judge = store.judges()[0]
        _add_battle(store, XSS_BATTLE, "round1/sft", "base", OPPONENT, XSS_ANSWER, "a plain answer", judge,
                    Verdict("model_b", 0.1, 0.9, "<img src=x onerror=alert(2)>",
                            {"output": "</script><script>alert(3)</script>"}),
                    prompt="</script><script>alert(4)</script> Say hi.")
    return run_dir


def _judged(run_dir: Path) -> list[dict]:
    with Store(run_dir / "store.sqlite") as store:
        return store.judged_battles(store.judges()[0])


def test_report_in_headless_chromium(pico_run, tmp_path):
    from headless_chromium import HeadlessChromium, chromium_available

    if not chromium_available():
        # A failure, not a skip: a report nobody has seen render is not tested.
        pytest.fail("no /usr/bin/chromium: `make browser` installs Debian's chromium (root + apt-get)")
    started = time.perf_counter()
    assert main(["report", str(pico_run)]) == 0
    report = pico_run / "report.html"
    print(f"report written in {time.perf_counter() - started:.2f}s, {report.stat().st_size} bytes")
    html = report.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html  # escaped in the file itself

    judged = _judged(pico_run)
    with Store(pico_run / "store.sqlite") as store:
        all_battles = store.battles()
    final_board = json.loads((pico_run / "round2" / "sft" / "eval.json").read_text())["leaderboard"]
    started = time.perf_counter()
    with HeadlessChromium() as browser:
        page = browser.open(report.as_uri())

        def select(element_id: str, value: str) -> None:
            page.evaluate(f"(() => {{ const s = document.getElementById({json.dumps(element_id)}); "
                          f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()")

        def visible_leaderboard() -> list[str]:
            return page.evaluate("[...document.querySelectorAll('div.snapshot:not([hidden]) span.model')]"
                                 ".map(e => e.textContent)")

        def matches() -> int:
            return int(page.evaluate("document.getElementById('battle-count').dataset.matches"))

        # Leaderboard: every checkpoint and the opponent, as in the last eval.json; the first snapshot
        # (after the base evaluation) has only the base and the opponent.
        assert visible_leaderboard() == [r["model"] for r in final_board]
        assert set(visible_leaderboard()) == {"base", "r1-sft", "r2-sft", OPPONENT}
        select("leaderboard-snapshot", "0")
        assert sorted(visible_leaderboard()) == sorted(["base", OPPONENT])

        # Win-rate matrix: the base-vs-opponent cell counts every decided battle between them.
        pair = [b for b in judged if {b.model_a, b.model_b} == {"base", OPPONENT} and b.winner != "error"]
        wins = sum((b.winner == "model_a") == (b.model_a == "base") for b in pair if b.winner != "tie")
        ties = sum(b.winner == "tie" for b in pair)
        cell = page.evaluate(f"(() => {{ const c = document.querySelector('div.matrix[data-scope=\"all\"] "
                             f"td[data-row=\"base\"][data-col={json.dumps(OPPONENT)}]'); "
                             f"return c && [c.dataset.games, c.firstChild.textContent]; }})()")
        assert cell == [str(len(pair)), f"{(wins + ties / 2) / len(pair):.2f}"]
        rows = page.evaluate("[...document.querySelectorAll('div.matrix[data-scope=\"all\"] th.row')].map(e => e.textContent)")
        assert set(rows) == {"base", "r1-sft", "r2-sft", OPPONENT}

        # Judges: the run's judge audited from its stored verdicts, as report/judges.py computes it.
        from offline_arena.report.judges import judge_audits

        with Store(pico_run / "store.sqlite") as store:
            judge_name = store.judges()[0]
        [audit] = [a for a in judge_audits(pico_run / "store.sqlite") if a.judge == judge_name]
        judge_row = page.evaluate("[...document.querySelectorAll('#judges table.judges tbody tr')]"
                                  ".map(r => [...r.children].map(c => c.textContent))")
        assert judge_row[0][0] == audit.judge and judge_row[0][1] == str(audit.pairs) == str(len(judged))
        assert judge_row[0][5] == "n/a"  # a reward model keeps no single-order verdicts

        # Battle browser: filters change what is shown.
        assert matches() == len(all_battles)
        select("filter-stage", "round1/sft")
        assert matches() == sum(b.tag == "round1/sft" for b in all_battles) < len(all_battles)
        select("filter-verdict", "model_b")
        assert matches() == sum(b.tag == "round1/sft" and b.winner == "model_b" for b in judged)
        select("filter-verdict", "")
        select("filter-stage", "")
        page.evaluate("(() => { const t = document.getElementById('filter-text'); t.value = 'alert(1)'; "
                      "t.dispatchEvent(new Event('input')); })()")
        assert matches() == 1
        shown = page.evaluate("[...document.querySelectorAll('#battle-list pre.text')].map(e => e.textContent)")
        assert XSS_ANSWER in shown and "</script><script>alert(4)</script> Say hi." in shown
        assert page.evaluate("document.querySelector('#battle-list .explanation').textContent") == \
            "Judge: <img src=x onerror=alert(2)>"
        assert page.evaluate("document.querySelectorAll('#battle-list script, #battle-list img, #battle-list b').length") == 0
        assert page.evaluate("document.querySelectorAll('script').length") == 2  # the data block and ours

        page.evaluate("document.getElementById('filter-text').value = ''; "
                      "document.getElementById('filter-text').dispatchEvent(new Event('input'))")
        select("leaderboard-snapshot", str(page.evaluate("document.getElementById('leaderboard-snapshot').length - 1")))
        shot = page.screenshot(tmp_path / "report.png", 0, 2400)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
        assert browser.dialogs == []            # no alert() ever ran
        assert browser.page_errors == []
        assert browser.console_errors == []
        assert browser.requests == [report.as_uri()]  # nothing fetched besides the file itself
    print(f"browser checks: {time.perf_counter() - started:.1f}s")


def test_report_of_a_partly_finished_run(pico_run, tmp_path):
    """Killed during round 2's training: round2/sft's folder has battles but no eval.json or done.json."""
    partial = tmp_path / "partial"
    shutil.copytree(pico_run, partial, ignore=shutil.ignore_patterns("checkpoint", "report.html", "*.png"))
    for name in ("eval.json", "done.json", "metrics.json"):
        (partial / "round2" / "sft" / name).unlink(missing_ok=True)
    (partial / "summary.json").unlink()
    html = write_report(partial).read_text()
    assert "1 of 2 stages done; in progress: round2/sft" in html
    assert ">r1-sft<" in html and ">r2-sft<" not in html.split('id="win-rates"')[0]  # no metrics for it yet
    data = json.loads(re.search(r'id="battle-data">(.*?)</script>', html, re.S).group(1))
    assert "round2/sft" in data["tags"]  # its battles are browsable already


def test_a_report_plans_only_the_stages_that_run_in_each_round(pico_run, tmp_path):
    """A stage that skips a round (`skip`, changed per round by `from_round`) is not counted as planned there:
    with a DPO stage that runs from round 2 on, the pico run (two rounds of SFT) plans three stages, not four."""
    partial = tmp_path / "partial"
    shutil.copytree(pico_run, partial, ignore=shutil.ignore_patterns("checkpoint", "report.html", "*.png"))
    recipe = json.loads((partial / "recipe.json").read_text())
    recipe["stages"].append({"kind": "dpo", "skip": True, "from_round": {"2": {"skip": False}}})
    (partial / "recipe.json").write_text(json.dumps(recipe))
    (partial / "summary.json").unlink()
    html = write_report(partial).read_text()
    assert "2 of 3 stages done" in html


def test_report_of_a_big_store_stays_small(tmp_path):
    """3,000 battles with long answers, no recipe (an `arena battle` folder): the browser keeps the latest
    ones, answers are cut to the shared budget, and ratings are fitted from the battles themselves."""
    with Store(tmp_path / "store.sqlite") as store:
        for i in range(3000):
            a, b = ("m1", "m2") if i % 3 else ("m2", "m3")
            verdict = Verdict(("model_a", "model_b", "tie")[i % 3], explanation=f"reason {i}")
            _add_battle(store, f"b{i}", "arena", a, b, f"answer {i} " + "x" * 5000, f"other {i} " + "y" * 5000,
                        "judge:test", verdict, prompt=f"prompt {i}")
    limits = BattleLimits(max_battles=500, text_budget=400_000)
    started = time.perf_counter()
    path = write_report(tmp_path, limits=limits)
    seconds = time.perf_counter() - started
    html = path.read_text()
    data = json.loads(re.search(r'id="battle-data">(.*?)</script>', html, re.S).group(1))
    assert len(data["battles"]) == 500 and data["total"] == 3000
    assert data["prompts"][0][0][1] == "prompt 2500"  # the latest 500
    assert data["answerCap"] == 400 and all(len(a[0]) <= 400 and a[1] > 5000 for a in data["answers"])
    assert "The latest 500 of 3000 battles" in html and "all judged battles" in html
    assert len(html) < 1_000_000, len(html)
    assert seconds < 20, seconds


def test_win_matrix_by_hand():
    cells = win_matrix([("A", "B", "model_a"), ("A", "B", "model_a"), ("B", "A", "tie"), ("A", "B", "error"),
                        ("B", "C", "model_b")])
    assert (cells[("A", "B")].wins, cells[("A", "B")].ties, cells[("A", "B")].losses) == (2, 1, 0)
    assert cells[("A", "B")].win_rate == pytest.approx(2.5 / 3)
    assert cells[("B", "A")].win_rate == pytest.approx(0.5 / 3)
    assert cells[("C", "B")].win_rate == 1.0 and ("A", "C") not in cells


def test_embedded_json_cannot_close_its_script_block():
    value = {"answer": "</script><script>alert(1)</script> & <!-- \u2028"}
    text = embed_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value
