import pytest

from offline_arena.models.spec import parse_model_spec


def test_builtin_spec():
    spec = parse_model_spec("builtin:smollm2-135m-instruct")
    assert (spec.kind, spec.location, spec.best_of) == ("builtin", "smollm2-135m-instruct", None)


def test_openai_spec_with_best_of():
    spec = parse_model_spec("openai:http://127.0.0.1:8000/v1/#llama-3.1-70b@best-of-8")
    assert spec.kind == "openai"
    assert spec.location == "http://127.0.0.1:8000/v1"
    assert spec.served_name == "llama-3.1-70b"
    assert spec.best_of == 8
    assert spec.inner.best_of is None and spec.inner.raw == "openai:http://127.0.0.1:8000/v1/#llama-3.1-70b"


@pytest.mark.parametrize("text,kind", [("./ckpt/sft", "hf"), ("/abs/path", "hf"), ("Qwen/Qwen2.5-7B", "hf"),
                                       ("vllm:Qwen/Qwen2.5-7B", "vllm")])
def test_local_and_hub_specs(text, kind):
    spec = parse_model_spec(text)
    assert spec.kind == kind and spec.location == text.removeprefix("vllm:")


@pytest.mark.parametrize("text,message", [
    ("", "non-empty"),
    ("builtin:gpt-5", "unknown builtin model"),
    ("openai:http://host/v1", "openai:<base_url>#<model>"),
    ("openai:ftp://host#m", "http://"),
    ("builtin:smollm2-135m-instruct@best-of-1", "n >= 2"),
    ("builtin:smollm2-135m-instruct@best-of", "@best-of-<n>"),
    ("s3:bucket/model", "unknown scheme"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_spec(text)


def test_revise_wraps_any_spec_and_comes_last():
    spec = parse_model_spec("builtin:smollm2-135m-instruct@best-of-4@revise")
    assert spec.revise and spec.best_of == 4 and spec.wrapped
    assert spec.inner.raw == "builtin:smollm2-135m-instruct@best-of-4" and not spec.inner.revise
    assert spec.inner.inner.raw == "builtin:smollm2-135m-instruct" and not spec.inner.inner.wrapped
    with pytest.raises(ValueError, match="must come last"):
        parse_model_spec("builtin:smollm2-135m-instruct@revise@best-of-4")
    with pytest.raises(ValueError, match="twice"):
        parse_model_spec("builtin:smollm2-135m-instruct@revise@revise")
