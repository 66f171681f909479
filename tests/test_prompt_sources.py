import json

import pytest

from offline_arena.prompts import PromptFileError, load_prompts


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_messages_and_prompt_rows(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        json.dumps({"id": "a", "prompt": "Hello?", "topic": "greeting"}),
        "",
        json.dumps({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    ])
    prompts = load_prompts(path)
    assert [p.id for p in prompts][0] == "a"
    assert prompts[0].messages == ({"role": "user", "content": "Hello?"},)
    assert prompts[0].meta == {"topic": "greeting"}
    assert len(prompts[1].id) == 12  # derived from the content, stable across runs
    assert load_prompts(path)[1].id == prompts[1].id


@pytest.mark.parametrize("line,problem", [
    ('{"prompt": "ok"', "p.jsonl:2: not valid JSON"),
    ('["not", "an", "object"]', "p.jsonl:2: expected a JSON object"),
    ('{"text": "hi"}', "p.jsonl:2: row has neither 'messages' nor 'prompt'"),
    ('{"prompt": ""}', "p.jsonl:2: 'prompt' must be a non-empty string"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', r"p.jsonl:2: messages\[0\].role"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}', "nothing is left to answer"),
    ('{"id": "a", "prompt": "dup"}', "p.jsonl:2: duplicate id 'a' \\(first on line 1\\)"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, problem):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"id": "a", "prompt": "fine"}), line])
    with pytest.raises(PromptFileError, match=problem):
        load_prompts(path)


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(PromptFileError, match="not found"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(PromptFileError, match="unsupported prompt source"):
        load_prompts(tmp_path / "x.csv")


def test_builtin_sample_set_loads():
    prompts = load_prompts("builtin:sample")
    assert len(prompts) == 32 and len({p.id for p in prompts}) == 32


def test_builtin_verifiable_source():
    prompts = load_prompts("builtin:verifiable:heldout:8:3")
    assert len(prompts) == 8 and all(p.meta["constraints"] for p in prompts)
    assert [p.id for p in prompts] == [p.id for p in load_prompts("builtin:verifiable:heldout:8:3")]
    with pytest.raises(PromptFileError, match="expected builtin:verifiable:SPLIT:N"):
        load_prompts("builtin:verifiable:heldout")
    with pytest.raises(PromptFileError, match="builtin:verifiable:nonsense:4"):
        load_prompts("builtin:verifiable:nonsense:4")
    with pytest.raises(PromptFileError, match="no built-in prompt set"):
        load_prompts("builtin:base_tasks")


def test_parquet_and_datasets_folders(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    rows = [{"id": "a", "prompt": "One?"}, {"id": "b", "prompt": "Two?"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    assert [p.id for p in load_prompts(tmp_path / "p.parquet")] == ["a", "b"]
    pq.write_table(pa.Table.from_pylist([{"id": "a", "prompt": "One?"}, {"id": "b", "prompt": None}]),
                   tmp_path / "bad.parquet")
    with pytest.raises(PromptFileError, match=r"bad.parquet row 1: 'prompt' must be a non-empty string"):
        load_prompts(tmp_path / "bad.parquet")

    messages = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "Bye"}]]
    DatasetDict({"train": Dataset.from_dict({"messages": messages})}).save_to_disk(str(tmp_path / "dd"))
    assert [p.messages[0]["content"] for p in load_prompts(f"{tmp_path / 'dd'}::train")] == ["Hi", "Bye"]
    with pytest.raises(PromptFileError, match="no split 'test'"):
        load_prompts(f"{tmp_path / 'dd'}::test")
    Dataset.from_dict({"text": ["x"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(PromptFileError, match="row 0: row has neither 'messages' nor 'prompt'"):
        load_prompts(tmp_path / "ds")
