"""MLflow logging per stage, if the recipe asks for it (a local SQLite tracking store in the run folder)."""

from __future__ import annotations

from ..config import Recipe
from ..run_folder import RunFolder


def stage_tracker(recipe: Recipe, folder: RunFolder):
    """A function that logs one stage's summary, or None when tracking is off."""
    if not recipe.tracking.mlflow:
        return None
    try:
        import mlflow
    except ImportError:
        raise ValueError("tracking.mlflow is on but mlflow is not installed: pip install 'offline-arena[track]'") from None
    mlflow.set_tracking_uri(f"sqlite:///{folder.mlflow_db.resolve()}")
    mlflow.set_experiment(recipe.name)

    def log_stage(summary: dict) -> None:
        from ..manifest import flatten

        with mlflow.start_run(run_name=f"round{summary['round']}/{summary['stage']}"):
            mlflow.log_params({k: v for k, v in flatten(recipe.model_dump(mode="json")).items()
                               if isinstance(v, (int, float, str, bool))})
            mlflow.log_metrics({k: float(v) for k, v in flatten({"train": summary["train"],
                                                                  "heldout": summary.get("heldout", {})}).items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)})

    return log_stage
