"""PHI de-identification: each identifier kind is removed, ordinary text is left alone, the wrappers send
nothing identifying to a real local HTTP server, and `arena deidentify` redacts a prompt file."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import LocalHTTPServer

from offline_arena.cli import main as arena
from offline_arena.judges.base import WINNERS, Matchup
from offline_arena.judges.llm_pairwise import PairwiseJudge
from offline_arena.judges.single_score import SingleScoreJudge
from offline_arena.models.base import Completion, GenerationRequest, SamplingParams
from offline_arena.models.openai import OpenAIChatGenerator
from offline_arena.privacy import (DeidentifyingGenerator, DeidentifyingJudge, deidentify, deidentify_messages,
                                   deidentify_together, default_output_path)
from offline_arena.privacy.deidentify import _analyzer

# (text, identifiers that must be gone, placeholder that must appear). Written apart from the bench's
# generator, with other phrasings.
PLANTED = {
    "name after a label": ("Pt name: Hollis Brandvold, here for review.", ["Hollis", "Brandvold"], "[NAME]"),
    "name after a title": ("Seen today by Dr. Marguerite Osei-Bonsu in clinic.", ["Marguerite", "Osei-Bonsu"], "[NAME]"),
    "surname after Mr.": ("Mr. Fenwick tolerated the procedure well.", ["Fenwick"], "[NAME]"),
    "name before a credential": ("Dictated by Paul Okonkwo, MD.", ["Paul", "Okonkwo"], "[NAME]"),
    "given name + surname": ("Yesterday Margaret Lindqvist called about her results.", ["Margaret", "Lindqvist"], "[NAME]"),
    "census surname after a given name the census lacks": ("Spoke to Oluwadamilare Fitzgerald about the refill.",
                                                           ["Oluwadamilare", "Fitzgerald"], "[NAME]"),
    "repeated first name": ("Patient: Tamsin Achterberg. Tamsin reports less pain.", ["Tamsin", "Achterberg"], "[NAME]"),
    "numeric date": ("DOB: 7/4/1948, admitted 2023-11-05.", ["7/4/1948", "2023-11-05"], "[DATE]"),
    "written date": ("Discharged Nov 9, 2023; review on 3rd March.", ["Nov 9, 2023", "3rd March"], "[DATE]"),
    "phone": ("Call the clinic at (503) 555-0176 after 5 pm.", ["555-0176"], "[PHONE]"),
    "fax": ("Fax results to 503.555.0123 today.", ["555.0123"], "[PHONE]"),
    "email": ("Send the letter to hbrandvold@example.net please.", ["hbrandvold", "example.net"], "[EMAIL]"),
    "ssn": ("SSN 512-44-3318 on file.", ["512-44-3318"], "[SSN]"),
    "mrn": ("MRN: 00458821, also medical record no. K7731902.", ["00458821", "K7731902"], "[MRN]"),
    "health plan": ("Member ID: QWX884512337; Medicaid no. 889012345.", ["QWX884512337", "889012345"], "[HEALTH_PLAN_ID]"),
    "account": ("Acct #: 4420-1187-09 for billing.", ["4420-1187-09"], "[ACCOUNT]"),
    "licence": ("Driver's license D4412098 checked.", ["D4412098"], "[LICENSE]"),
    "vehicle": ("Drives a truck, VIN 1FTFW1ET5DFC10312, plate 6TRJ244.", ["1FTFW1ET5DFC10312", "6TRJ244"], "[VEHICLE_ID]"),
    "device serial": ("Pacemaker S/N: PJN448120S interrogated.", ["PJN448120S"], "[DEVICE_ID]"),
    "device MAC": ("Pump MAC 3C:22:FB:19:A0:7E paired.", ["3C:22:FB:19:A0:7E"], "[DEVICE_ID]"),
    "url": ("Results at https://mychart.example.org/visit/5521 now.", ["mychart", "5521"], "[URL]"),
    "ip": ("Logged in from 203.0.113.77 at home.", ["203.0.113.77"], "[IP_ADDRESS]"),
    "street address": ("Lives at 2207 Chestnut Avenue, Apt 4C with family.", ["2207", "Chestnut", "4C"], "[ADDRESS]"),
    "po box": ("Mail to P.O. Box 7781.", ["7781"], "[ADDRESS]"),
    "city and zip": ("Moved to Duluth, MN 55802 last year.", ["Duluth", "55802"], "[ZIP]"),
    "age over 89": ("A 97-year-old woman with a fall.", ["97"], "[AGE]"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_kind_of_identifier_is_removed(case):
    text, identifiers, placeholder = PLANTED[case]
    redacted = deidentify(text)
    for identifier in identifiers:
        assert identifier not in redacted.text, (case, redacted.text)
    assert placeholder in redacted.text, (case, redacted.text)
    assert redacted.counts()[placeholder.strip("[]")] >= 1


ORDINARY = [
    "Write a haiku about May Day.",
    "Explain photosynthesis to a ten-year-old in three sentences.",
    "Take 2 tablets twice daily for 7 days; recheck in 4 weeks. BP 142/88, HR 76, HbA1c 7.9%.",
    "Clinic note: 59-year-old man with gout. Plan: naproxen 500 mg twice daily with food for 5 days.",
    "At the end of your response, please explicitly add a postscript starting with P.S.",
    "Use Python 3.11 and numpy 2.4.6; see section 4.5.6 of the manual.",
    "Grant Park and Lake Shore Drive are in the city. Call 911 in an emergency.",
    "Your response must have exactly 3 sections. Mark each with SECTION X, such as SECTION 1.",
    "Is it safe to put a metal fork in a microwave oven? Answer in one word.",
    "In Python, lists are mutable. Explain Newton's laws and Parkinson disease in two lines.",
    "Write a poem about a windy day, Brown rice and Green tea.",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_unchanged(text):
    redacted = deidentify(text)
    assert redacted.text == text
    assert redacted.findings == ()


def test_same_input_same_output_even_with_a_fresh_analyzer():
    text = PLANTED["repeated first name"][0] + " " + PLANTED["street address"][0] + " " + PLANTED["mrn"][0]
    first = deidentify(text)
    _analyzer.cache_clear()  # rebuilt: recognizers registered anew, nothing carried over
    second = deidentify(text)
    assert first == second
    starts = [f.start for f in first.findings]
    assert starts == sorted(starts) and all(a.end <= b.start for a, b in zip(first.findings, first.findings[1:]))


def test_redacting_redacted_text_changes_nothing():
    """A prompt file redacted by `arena deidentify` may pass through a wrapper again: the placeholders
    themselves must not be taken for identifiers."""
    once = deidentify(NOTE).text
    assert deidentify(once).text == once


def test_no_network_is_used(monkeypatch):
    """Presidio's stock email check fetches the public-suffix list on first use; ours must not. Every
    name lookup and connection to anything but this machine is recorded (and refused)."""
    attempts = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def local(host) -> bool:
        return str(host).startswith(("127.", "::1", "localhost"))

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not local(host):
            attempts.append(host)
            raise OSError("network disabled in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded_connect(self, address):
        if isinstance(address, tuple) and not local(address[0]):
            attempts.append(address)
            raise OSError("network disabled in this test")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    _analyzer.cache_clear()
    redacted = deidentify("Write to kim.osei@mail.example.org or see www.example.com/kim.")
    assert "kim.osei" not in redacted.text and "[EMAIL]" in redacted.text
    assert attempts == []


def test_messages_keep_roles_and_other_fields():
    messages = [{"role": "system", "content": "You are kind.", "name": "sys"},
                {"role": "user", "content": PLANTED["ssn"][0]}]
    out, counts = deidentify_messages(messages)
    assert [m["role"] for m in out] == ["system", "user"] and out[0] == messages[0]
    assert "512-44-3318" not in out[1]["content"] and counts["SSN"] == 1
    assert messages[1]["content"] == PLANTED["ssn"][0]  # the caller's list is not modified


# --- the wrappers against a real local HTTP server that records what it is sent -------------------

SECRETS = ["Siobhan", "Okafor", "7730215", "617", "555-0199", "512-44-3318", "s.okafor@example.org", "04/22/1957",
           "48 Birch Lane", "Duluth", "55802"]
NOTE = ("Patient: Siobhan Okafor, MRN 7730215, DOB 04/22/1957. Phone (617) 555-0199, SSN 512-44-3318, "
        "email s.okafor@example.org. Lives at 48 Birch Lane, Duluth, MN 55802. Summarise her asthma plan.")


class RecordingServer(LocalHTTPServer):
    """An OpenAI-compatible endpoint that keeps every request body and answers `reply`."""

    def __init__(self, reply: str):
        self.bodies: list[bytes] = []

        def respond(path, body, headers):
            self.bodies.append(body)
            answer = {"choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                      "usage": {"completion_tokens": 3}}
            return 200, json.dumps(answer).encode(), {}

        super().__init__(respond)

    def received(self) -> str:
        # Both the raw bytes and the decoded JSON: an identifier must not arrive escaped either.
        return "\n".join(b.decode("utf-8") + "\n" + json.dumps(json.loads(b), ensure_ascii=False)
                         for b in self.bodies)


@pytest.fixture
def server():
    recording = RecordingServer("Fine. [[7]]\n[[A]]")
    yield recording
    recording.close()


def test_generator_wrapper_sends_no_identifier(server):
    inner = OpenAIChatGenerator(server.url, "opponent", progress=False, max_retries=0)
    generator = DeidentifyingGenerator(inner)
    requests = [GenerationRequest.of([{"role": "user", "content": NOTE}], params=SamplingParams(max_new_tokens=8),
                                     sample_index=i) for i in range(2)]
    out = generator.generate(requests)
    assert [c.text for c in out] == ["Fine. [[7]]\n[[A]]"] * 2 and out[0].meta["redacted"]["NAME"] >= 1
    assert len(server.bodies) == 2
    received = server.received()
    assert "[NAME]" in received and "[MRN]" in received  # the prompt did arrive, redacted
    assert [s for s in SECRETS if s in received] == []
    # Its own cache keys: a redacted answer is never mistaken for the raw model's.
    assert generator.fingerprint == inner.fingerprint + "+deid"
    assert "Siobhan" not in generator.render(requests[0].messages)


@pytest.mark.parametrize("make_judge", [lambda g: PairwiseJudge(g), lambda g: SingleScoreJudge(g, use_reference=True)],
                         ids=["pairwise", "single-score"])
def test_judge_wrapper_sends_no_identifier(server, make_judge):
    inner = make_judge(OpenAIChatGenerator(server.url, "judge", progress=False, max_retries=0))
    judge = DeidentifyingJudge(inner)
    matchup = Matchup(messages=({"role": "user", "content": NOTE},),
                      context={"reference": "Siobhan Okafor (MRN 7730215) should use her inhaler.", "constraints": []},
                      answer_a=Completion("Dear Siobhan Okafor, call (617) 555-0199.", True, 9),
                      answer_b=Completion("Ms. Okafor of 48 Birch Lane, Duluth should rest.", True, 9))
    verdicts = judge.judge([matchup])
    assert len(verdicts) == 1 and verdicts[0].winner in WINNERS and verdicts[0].winner != "error"
    assert verdicts[0].raw["redacted"] is True
    assert judge.fingerprint == inner.fingerprint + "+deid"
    received = server.received()
    assert server.bodies and "[NAME]" in received
    assert [s for s in SECRETS if s in received] == []


def test_judge_wrapper_sends_no_identifier_from_a_lowercased_answer(server):
    """An answer written in lowercase (a lowercase constraint, the @revise opponent) names the patient the
    prompt named: the name found in the prompt is removed from the answer in any case."""
    judge = DeidentifyingJudge(PairwiseJudge(OpenAIChatGenerator(server.url, "judge", progress=False, max_retries=0)))
    matchup = Matchup(messages=({"role": "user", "content": NOTE},), context={"constraints": []},
                      answer_a=Completion("dear siobhan okafor, your asthma plan from the duluth clinic is fine.", True, 9),
                      answer_b=Completion("SIOBHAN: use the inhaler. okafor family history noted.", True, 9))
    judge.judge([matchup])
    received = server.received().lower()
    assert server.bodies and "[name]" in received
    assert [s for s in ("siobhan", "okafor", "duluth") if s in received] == []


def test_a_found_name_is_removed_in_any_case():
    """A name or place found once through its cue is removed wherever it recurs, whatever its case: in
    the same text and in the texts redacted with it."""
    text = ("Patient: Siobhan Okafor, from Albany, NY. Plan reviewed with siobhan; the okafor family and "
            "SIOBHAN's sister agree. Follow-up at the albany clinic.")
    redacted = deidentify(text).text
    assert [w for w in ("siobhan", "okafor", "albany") if w in redacted.lower()] == [], redacted
    assert "Plan reviewed with [NAME]; the [NAME] family" in redacted
    prompt, answer = deidentify_together(["Patient: Siobhan Okafor, Albany, NY. Write her a short letter.",
                                          "dear siobhan okafor, your results from the albany clinic are normal."])
    assert [w for w in ("siobhan", "okafor", "albany") if w in answer.text] == [], answer.text
    assert answer.text.endswith(", your results from the [LOCATION] clinic are normal."), answer.text


def test_a_found_name_that_is_an_ordinary_word_is_removed_only_as_a_name():
    """Names that are also everyday words ("Grace", "Will", "Lee") are removed lowercase only next to
    another word of the found name; on their own only capitalised, so "grace" and "will" in a sentence stay."""
    prompt, answer = deidentify_together(["Patient: Grace Lee, Salt Lake City, UT. Write to her.",
                                          "dear grace lee, we will see you in salt lake city with grace and "
                                          "patience. Grace, the lake is near the city."])
    assert [w for w in ("grace lee", "salt", "Grace,") if w in answer.text] == [], answer.text
    for kept in ("we will see you in", "with grace and patience", "the lake is near the city"):
        assert kept in answer.text, answer.text


# --- text written all in lowercase: the cues without their capitals ------------------------------------
# Still missed lowercase (see deidentify.py): a name with no cue whose given name or surname the census
# lacks ("dear tamsin achterberg," is caught by its salutation, "tamsin achterberg called" is not), a name
# after a label other than "name:" whose words the census lacks ("patient: tamsin achterberg"), and a
# place with no state and ZIP ("the albany clinic").

LOWERCASE = {
    "salutation": ("dear siobhan okafor,\nyour results are normal.", ["siobhan", "okafor"]),
    "label": ("patient name: tamsin achterberg, here for review.", ["tamsin", "achterberg"]),
    "label, census given name": ("patient: mary achterberg, here for review.", ["mary", "achterberg"]),
    "title": ("seen today by dr. marguerite osei-bonsu; mrs. fenwick came too.", ["marguerite", "osei-bonsu", "fenwick"]),
    "credential": ("dictated by paul okonkwo, md.", ["paul", "okonkwo"]),
    "relation": ("her daughter hollis brandvold can be reached at 555-0176.", ["hollis", "brandvold"]),
    "relation, a verb after": ("her son james works nearby.", ["james"]),
    "header": ("patient: lars r. novak   dob: 4/17/1950", ["lars", "novak"]),
    "address": ("lives at 2207 chestnut avenue, apt 4c, duluth, mn 55802.", ["2207", "chestnut", "4c", "duluth", "55802"]),
    "written date": ("discharged november 9, 2023.", ["november 9, 2023"]),
    "no cue, census given name and surname": ("the refill was collected by susan nakamura today.", ["susan", "nakamura"]),
}


@pytest.mark.parametrize("case", sorted(LOWERCASE))
def test_an_all_lowercase_text_keeps_its_cues(case):
    text, identifiers = LOWERCASE[case]
    redacted = deidentify(text).text
    assert [i for i in identifiers if i in redacted] == [], redacted


@pytest.mark.parametrize("text", [t.lower() for t in ORDINARY] + [
    "dear all,\nplease review the attached plan.", "dear colleague, thank you for seeing her.",
    "oh dear, the patient says it hurts.", "patient: reports less pain since monday.",
    "the dr. will see you now.", "her daughter lives nearby.", "take 2 tablets twice daily by mouth, then rest.",
    "it is a 3 hour drive, then 2 blocks down the road; may 5 we march on."])
def test_ordinary_lowercase_text_is_left_unchanged(text):
    redacted = deidentify(text)
    assert redacted.text == text


# --- arena deidentify ------------------------------------------------------------------------------

def test_cli_redacts_a_prompt_file(tmp_path, capsys):
    path = tmp_path / "notes.jsonl"
    rows = [{"id": "n1", "prompt": NOTE, "source": "clinic", "meta": {"constraints": [{"kind": "x"}]}},
            {"messages": [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": PLANTED["vehicle"][0]}], "split": "test"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert arena(["deidentify", str(path)]) == 0
    out = default_output_path(path)
    assert out.name == "notes.deid.jsonl"
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == 2
    assert {k: v for k, v in written[0].items() if k != "prompt"} == {k: v for k, v in rows[0].items() if k != "prompt"}
    assert written[1]["split"] == "test" and written[1]["messages"][0] == rows[1]["messages"][0]
    text = out.read_text(encoding="utf-8")
    assert [s for s in SECRETS + ["1FTFW1ET5DFC10312"] if s in text] == []
    printed = capsys.readouterr().out
    assert "NAME" in printed and "VEHICLE_ID" in printed


def test_cli_names_the_bad_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": NOTE}) + "\n" + '{"prompt": "unterminated\n', encoding="utf-8")
    assert arena(["deidentify", str(path), "--out", str(tmp_path / "out.jsonl")]) == 2
    error = capsys.readouterr().err
    assert f"{path}:2" in error and "not valid JSON" in error
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written
