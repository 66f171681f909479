"""Recipes: the validated schema of a run. YAML files in recipes/ are instances of `Recipe`; every field
has a default and a one-line description, and a bad recipe fails with the file and the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .stage_kinds import KINDS, STAGE_KINDS, order_rule


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown (misspelt) field is an error, never ignored


class Opponent(Strict):
    name: str = Field(description="display name in battles and leaderboards")
    model: str = Field(description="model spec: builtin:NAME, folder, Hub id, vllm:..., openai:URL#NAME, ...@best-of-N")
    scorer: str = Field("verifier", description="best-of-n scorer, when the spec ends in @best-of-N")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the endpoint's API key (empty: it needs none)")
    price_per_1k_tokens: float = Field(0.0, description="generation price, for --dry-run cost estimates")

    @field_validator("model")
    @classmethod
    def _spec(cls, value: str) -> str:
        from .models.spec import parse_model_spec

        parse_model_spec(value)
        return value


class Prompts(Strict):
    source: str = Field("builtin:verifiable", description="builtin:verifiable, or a .jsonl/.parquet/datasets source split into shards")
    per_stage: int = Field(48, ge=1, description="fresh prompts each stage battles on")
    heldout: int = Field(96, ge=1, description="held-out prompts for evaluation; never trained on")
    short_answers: bool = Field(True, description="builtin:verifiable: only constraints a short answer can meet")
    constraints: list[str] | None = Field(None, description="builtin:verifiable: only these constraint ids (null: all that fit)")
    min_constraints: int = Field(1, ge=1, description="builtin:verifiable: fewest constraints a prompt")
    max_constraints: int = Field(3, ge=1, description="builtin:verifiable: most constraints a prompt")
    phrasings: int = Field(1, ge=1, description="builtin:verifiable: wordings per constraint drawn from (1: the pack's own only)")

    @model_validator(mode="after")
    def _pack_settings(self) -> "Prompts":
        if self.min_constraints > self.max_constraints:
            raise ValueError(f"min_constraints ({self.min_constraints}) > max_constraints ({self.max_constraints})")
        if self.constraints is not None:
            from .prompts.constraints import CONSTRAINTS

            unknown = sorted(set(self.constraints) - set(CONSTRAINTS))
            if unknown:
                raise ValueError(f"constraints: unknown id(s) {unknown}; known: {', '.join(sorted(CONSTRAINTS))}")
        return self


class Generation(Strict):
    max_new_tokens: int = Field(96, ge=1, description="token limit of a battle answer")
    temperature: float = Field(0.7, ge=0, description="sampling temperature of battle answers")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    batch_size: int | None = Field(None, ge=1, description="most prompts per generation batch (transformers backend; "
                                                           "null: as many as memory and prompt lengths allow, up to 128)")


class Launch(Strict):
    """How a stage's trainer runs as a launched job (train/launch.py): `accelerate launch` on N processes,
    the driver waiting for it. sft and dpo only, for now."""

    processes: int = Field(2, ge=1, description="processes (one per GPU; on a CPU-only machine, gloo ranks)")
    config_file: str | None = Field(None, description=(
        "an `accelerate config` file (DDP or ZeRO-1/2; FSDP and ZeRO-3 are refused); null: plain DDP on this machine"))
    extra_args: list[str] = Field(default_factory=list, description="more `accelerate launch` flags, as is")


class Train(Strict):
    learning_rate: float = Field(1e-5, gt=0, description="peak learning rate")
    epochs: float = Field(1.0, gt=0, description="passes over the stage's data")
    max_steps: int = Field(-1, description="> 0 caps optimizer steps")
    batch_size: int = Field(4, ge=1, description="examples per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(512, ge=16, description="tokens per example")
    lora: bool = Field(False, description="train LoRA adapters (merged into the saved checkpoint)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory")
    runaway_tolerance: float = Field(0.1, ge=0, description="allowed rise of the runaway rate before the stage fails")
    probe_prompts: int = Field(12, ge=0, description="stage prompts used to measure the runaway rate before/after")
    extra: dict = Field(default_factory=dict, description="passed to the TRL config as is (e.g. beta for DPO)")
    launch: Launch | None = Field(None, description=(
        "run the trainer as an `accelerate launch` job on several processes (sft, dpo); null: in the driver "
        "process. batch_size stays per process, so the global batch is processes x batch_size x grad_accum"))


class OpenRLHFEngine(Strict):
    """How `engine: openrlhf` launches OpenRLHF's PPO (train/openrlhf.py): the command, the GPUs, and any
    other flag of `openrlhf.cli.train_ppo_ray` as is."""

    launcher: list[str] = Field(
        default_factory=lambda: ["python", "-m", "openrlhf.cli.train_ppo_ray"],
        description="the command before OpenRLHF's flags, run in OpenRLHF's own environment: e.g. [ray, job, "
                    "submit, --address, http://HEAD:8265, --, python3, -m, openrlhf.cli.train_ppo_ray], or a "
                    "container's exec command; the stage folder must be on a file system the cluster sees")
    nodes: int = Field(1, ge=1, description="nodes; actor, reference, critic, reward model and vLLM share them (colocated)")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node")
    vllm_tensor_parallel_size: int = Field(1, ge=1, description="GPUs per vLLM engine (it must divide nodes x gpus_per_node)")
    extra_args: list[str] = Field(default_factory=list, description=(
        "more train_ppo_ray flags, appended last, so they override ours (argparse keeps the last value), e.g. "
        "[--ds.zero_stage, '3', --actor.gradient_checkpointing_enable]"))

    @model_validator(mode="after")
    def _layout(self) -> "OpenRLHFEngine":
        if (self.nodes * self.gpus_per_node) % self.vllm_tensor_parallel_size:
            raise ValueError(f"vllm_tensor_parallel_size {self.vllm_tensor_parallel_size} does not divide the "
                             f"{self.nodes * self.gpus_per_node} GPUs")
        return self


class PPO(Strict):
    steps: int = Field(8, ge=1, description="PPO iterations (rollout + update)")
    rollouts_per_step: int = Field(8, ge=1, description="prompts sampled per iteration")
    learning_rate: float = Field(1e-5, gt=0, description="policy and value learning rate")
    init_kl_coef: float = Field(0.05, ge=0, description="initial KL penalty coefficient")
    target_kl: float | None = Field(6.0, description="adaptive KL target; null for a fixed coefficient")
    max_new_tokens: int = Field(64, ge=1, description="rollout token limit")
    reward: Literal["rm", "verifier", "rm+verifier"] = Field(
        "rm", description="rm: a reward model trained on the stage's battle pairs; verifier: the share of the prompt's "
                          "constraints met (RL with verifiable rewards); rm+verifier: their sum")
    missing_eos_penalty: float | None = Field(1.0, description="subtracted from the reward of a rollout that never stops")
    extra: dict = Field(default_factory=dict, description="other PPOSettings fields, as is")
    engine: Literal["ours", "openrlhf"] = Field(
        "ours", description="ours: train/ppo.py in this process; openrlhf: OpenRLHF's PPO (Ray + vLLM + DeepSpeed) "
                            "in its own environment, launched as `openrlhf` says (train/openrlhf.py)")
    openrlhf: OpenRLHFEngine = Field(default_factory=OpenRLHFEngine, description="engine openrlhf only: how it is launched")

    @model_validator(mode="after")
    def _engine(self) -> "PPO":
        if self.engine == "ours":
            # Compared with the defaults, not "was it given": a resolved recipe.json spells every default out.
            if self.openrlhf != OpenRLHFEngine():
                raise ValueError("openrlhf: only engine openrlhf is launched; this stage runs engine ours")
            return self
        # What OpenRLHF cannot do as we do, refused here rather than silently done otherwise.
        if self.reward != "rm":
            raise ValueError(f"engine openrlhf: reward {self.reward!r} needs our verifier inside OpenRLHF's "
                             "environment; only reward rm (our reward model, loaded by OpenRLHF) is supported")
        if self.target_kl is not None:
            raise ValueError("engine openrlhf: set target_kl: null. OpenRLHF's adaptive KL controller measures KL "
                             "per token, ours per completion, and its trainer marks the adaptive controller as "
                             "unsupported; a fixed init_kl_coef is what it runs")
        return self


class Data(Strict):
    min_chars: int = Field(1, ge=0, description="drop answers shorter than this")
    max_chars: int = Field(8000, ge=1, description="drop answers longer than this")
    require_stopped: bool = Field(True, description="drop answers that hit the token limit (they teach runaways)")
    min_margin: float | None = Field(None, description="dpo/kto/rm: keep battles with |score_a - score_b| >= this")
    require_passing: bool = Field(True, description="sft: a target answer must satisfy every checkable constraint of its prompt")
    sft_from_ties: bool = Field(False, description="sft: also train on passing answers of tied battles (rejection sampling)")
    sft_per_prompt: int = Field(1, ge=1, description="sft: up to this many distinct answers a prompt")


class Merge(Strict):
    method: str = Field("slerp", description="linear, slerp, task_arithmetic, ties, dare_ties or dare_linear (mergekit)")
    models: Literal["previous_round", "this_round"] = Field(
        "previous_round", description="previous_round: the current model with the model this round started from "
                                      "(round 1: the target); this_round: the checkpoints of this round's earlier stages")
    base: Literal["target", "round_start"] = Field(
        "target", description="task-vector methods: the base model, the recipe's target or the model this round started from")
    t: float | None = Field(None, ge=0, le=1, description="slerp: 0 keeps the first model, 1 the second (null: 0.5)")
    weights: list[float] | None = Field(None, description="one per merged model, in the order of `models` (null: equal)")
    density: float | None = Field(None, gt=0, le=1, description="ties/dare_*: share of each task vector kept (null: 0.5)")
    promote: bool = Field(True, description="the merge becomes the next target; false: it only joins the leaderboard")

    @model_validator(mode="after")
    def _parameters(self) -> "Merge":
        from .merge import MERGE_METHODS

        spec = MERGE_METHODS.get(self.method)
        if spec is None:
            raise ValueError(f"unknown merge method {self.method!r}; known: {', '.join(MERGE_METHODS)}")
        for name in ("t", "weights", "density"):
            if getattr(self, name) is not None and name not in spec.parameters:
                raise ValueError(f"{self.method} does not use {name}; it takes {', '.join(sorted(spec.parameters))}")
        return self


class Stage(Strict):
    kind: Literal[STAGE_KINDS] = Field(description="what the stage trains (stage_kinds.py; merge trains nothing)")
    train: Train = Field(default_factory=Train, description="training settings (rm_ppo: the reward model's)")
    ppo: PPO = Field(default_factory=PPO, description="rm_ppo only: the PPO settings")
    data: Data = Field(default_factory=Data, description="which battle answers become training data")
    min_rows: int = Field(4, ge=1, description="skip training (keep the current model) with fewer data rows")
    prompts: int | None = Field(None, ge=1, description="fresh prompts this stage battles on (null: prompts.per_stage)")
    teacher: str | None = Field(None, description="distill only: the teacher model spec; it must share the target's tokenizer")
    merge: Merge = Field(default_factory=Merge, description="merge only: what is merged, how, and what becomes of it")

    @model_validator(mode="after")
    def _launch(self) -> "Stage":
        if self.train.launch is not None and not KINDS[self.kind].launchable:
            launchable = [k.name for k in KINDS.values() if k.launchable]
            raise ValueError(f"train.launch: a {self.kind} stage cannot run its trainer as a launched job yet "
                             f"(only {', '.join(launchable)}); drop train.launch to train it in the driver")
        return self

    @model_validator(mode="after")
    def _teacher(self) -> "Stage":
        if self.kind == "distill":
            if not self.teacher:
                raise ValueError("a distill stage needs a teacher (a model spec sharing the target's tokenizer)")
            from .models.spec import parse_model_spec

            spec = parse_model_spec(self.teacher)
            if spec.kind == "openai" or spec.wrapped:
                raise ValueError("teacher: logit distillation needs the teacher's weights (builtin:, a folder or a Hub id)")
        elif self.teacher is not None:
            raise ValueError(f"teacher: only a distill stage has a teacher, not a {self.kind} stage")
        return self


class Evaluation(Strict):
    heldout: bool = Field(True, description="verifiable accuracy and runaway rate on the held-out split")
    leaderboard: bool = Field(True, description="every checkpoint battles the opponents on held-out prompts; ratings with CIs")
    bootstrap_rounds: int = Field(1000, ge=10, description="bootstrap rounds for CIs")
    max_new_tokens: int | None = Field(None, ge=1, description="token limit of held-out answers (null: generation.max_new_tokens)")
    temperature: float = Field(0.0, ge=0, description="held-out sampling temperature; 0 = greedy, so the same model gives the same answers")
    suites: dict[str, dict] = Field(default_factory=dict, description=(
        "evaluation suites run on every checkpoint (base and each stage's model), by name -> options, e.g. "
        "{ifbench: {limit: 100, max_new_tokens: 256}}; names: verifiable, ifbench, mtbench, arena"))

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, suites: dict) -> dict:
        if not suites:  # most recipes: keep the suites' modules out of every recipe load
            return suites
        from .evals.suites import SUITES

        unknown = sorted(set(suites) - set(SUITES))
        if unknown:
            raise ValueError(f"unknown evaluation suite(s) {unknown}; known: {', '.join(SUITES)}")
        return suites


class Tracking(Strict):
    mlflow: bool = Field(False, description="log params and metrics to MLflow (local SQLite store in the run folder)")


class Privacy(Strict):
    deidentify: Literal["off", "external", "all"] = Field(
        "external", description="redact PHI (privacy/): external = from what goes to endpoints on other hosts "
                                "(opponents, LLM judges); all = from the prompts themselves, so nothing anywhere "
                                "sees raw text; off = nothing (see privacy/policy.py)")


class Prices(Strict):
    gpu_hour: float = Field(0.0, ge=0, description="price of one GPU hour, for --dry-run cost estimates")
    gpus: int = Field(1, ge=1, description="GPUs the run uses")
    judge_per_1k_tokens: float = Field(0.0, ge=0, description="judge price per 1k tokens (prompt + output)")


def stage_prompt_count(recipe: "Recipe", kind: str) -> int:
    """How many fresh prompts a stage of `kind` battles on (its own `prompts`, else `prompts.per_stage`)."""
    stage = next((s for s in recipe.stages if s.kind == kind), None)
    return stage.prompts if stage is not None and stage.prompts else recipe.prompts.per_stage


class Recipe(Strict):
    name: str = Field("run", description="a name for the run")
    seed: int = Field(0, description="seed of prompt sampling, generation and training")
    target: str = Field("builtin:smollm2-135m-instruct", description="the model being trained")
    opponents: list[Opponent] = Field(min_length=1, description="the stronger models the target battles")
    judge: str = Field("verifier", description="verifier[:loose], pairwise:<model>, pairwise-arena-hard:<model>, score:<model>, rm:<folder>")
    judge_api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding an endpoint judge's API key")
    prompts: Prompts = Field(default_factory=Prompts, description="where prompts come from and how many")
    generation: Generation = Field(default_factory=Generation, description="how battle answers are sampled")
    rounds: int = Field(1, ge=1, le=8, description="how many times the stages repeat")
    stages: list[Stage] = Field(min_length=1, description="the stages of one round, in order")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="what is measured after each stage")
    tracking: Tracking = Field(default_factory=Tracking, description="experiment tracking")
    privacy: Privacy = Field(default_factory=Privacy, description="what is de-identified before it leaves the machine")
    prices: Prices = Field(default_factory=Prices, description="for --dry-run cost estimates")
    gpu_hours_per_stage: float = Field(0.0, ge=0, description="expected GPU hours of one stage, for --dry-run")

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        from .models.spec import parse_model_spec

        spec = parse_model_spec(value)
        if spec.kind == "openai" or spec.wrapped:
            raise ValueError("the target must be a trainable model (builtin:, a folder or a Hub id)")
        return value

    @model_validator(mode="after")
    def _order(self) -> "Recipe":
        names = [o.name for o in self.opponents]
        if len(set(names)) != len(names):
            raise ValueError(f"opponent names must be unique, got {names}")
        kinds = [s.kind for s in self.stages]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each stage kind may appear once per round, got {kinds}")
        # Arena Learning's order: imitation first, then preferences, then RL against a learned reward
        # (the kinds' ranks); a kind without a rank (a merge) may sit anywhere.
        ranks = [KINDS[k].rank for k in kinds if KINDS[k].rank is not None]
        if ranks != sorted(ranks):
            raise ValueError(f"bad stage order {kinds}: {order_rule()}")
        for index, stage in enumerate(self.stages):
            if stage.kind == "merge":
                _check_merge_inputs(stage.merge, index)
        return self


def _check_merge_inputs(merge: Merge, index: int) -> None:
    """How many models a merge stage gets is known from the recipe: two for previous_round, one per earlier
    stage for this_round (stages that end up skipped are dropped at run time)."""
    from .merge import MERGE_METHODS

    count = 2 if merge.models == "previous_round" else index
    where = f"stages.{index}.merge"
    if count < 2:
        raise ValueError(f"{where}: models: this_round needs at least two earlier stages in the round, got {count}")
    needed = MERGE_METHODS[merge.method].model_count
    if needed is not None and needed != count:
        raise ValueError(f"{where}: {merge.method} merges exactly {needed} models, but {merge.models} gives {count}")
    if merge.weights is not None and len(merge.weights) != count:
        raise ValueError(f"{where}: weights: {len(merge.weights)} given for the {count} models of {merge.models}")


class RecipeError(ValueError):
    pass


def load_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """Read and validate a recipe; errors say `file: field.path: problem`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of fields, got {type(data).__name__}")
    data.update(overrides or {})
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "(top level)"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field (check the spelling; see offline_arena/config.py for the schema)"
            problems.append(f"{path}: {where}: {message}")
        raise RecipeError("\n".join(problems)) from None
