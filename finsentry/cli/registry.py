"""`finsentry model`: the model registry, list, register, promote, roll back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry.cli.options import (
    console,
)
from foundation.settings import get_settings

if TYPE_CHECKING:
    from training.registry import ModelInfo


app = typer.Typer(help="The model registry: list, register, promote, roll back.", no_args_is_help=True)
Language = Annotated[
    str | None, typer.Option(help="The language's registry (en, zh); default: the first served language")
]


@app.command("list")
def model_list(
    language: Annotated[str | None, typer.Option(help="Only this language's models")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every model of every served language with its status, parent and frozen-set scores."""
    from training.learning import learning

    parts = learning(get_settings(), announce=False)
    registries = [parts.registry_for(language)] if language else list(parts.registries.values())
    models = [m for registry in registries for m in registry.models()]
    if as_json:
        print(json.dumps([_model_dict(m) for m in models], indent=2, default=str))
        return
    columns = (
        "language",
        "version",
        "status",
        "parent",
        "topic F1",
        "sentiment F1",
        "new labels",
        "decision",
    )
    table = Table(*columns)
    for m in models:
        frozen = m.metrics.get("frozen", {})
        table.add_row(
            m.language,
            m.version,
            m.status,
            m.parent or "",
            _f1(frozen.get("topic")),
            _f1(frozen.get("sentiment")),
            str(m.data.get("new_labels", "")),
            m.decision,
        )
    Console().print(table)


@app.command("register")
def model_register(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder, e.g. from `finsentry train`")],
    champion: Annotated[bool, typer.Option(help="Serve it now")] = True,
) -> None:
    """Copy a bundle into its language's registry (and make it the champion)."""
    from inference import Bundle
    from training.learning import learning

    parts = learning(get_settings())
    # Everything in the store now counts as seen: the next night trains on what arrives after this.
    stamp = parts.labels.newest_label_time()
    model = parts.registry_for(Bundle.open(bundle).language).register(
        bundle,
        "champion" if champion else "challenger",
        data={"trained_through": stamp.isoformat() if stamp else None, "registered_from": str(bundle)},
        decision="registered by hand",
    )
    console.print(f"{model.language} {model.version}: {model.status} ({model.bundle_path})")


@app.command("promote")
def model_promote(version: str, language: Language = None) -> None:
    """Serve VERSION now; workers switch to it."""
    from training.learning import learning

    model = learning(get_settings()).registry_for(language).promote(version)
    console.print(f"{model.version} is the {model.language} champion")


@app.command("rollback")
def model_rollback(language: Language = None) -> None:
    """Serve the language's previous champion again."""
    from training.learning import learning

    model = learning(get_settings()).registry_for(language).rollback()
    console.print(f"rolled back: {model.version} is the {model.language} champion")


def _f1(report: dict | None) -> str:
    return f"{report['macro_f1']:.4f}" if report else ""


def _model_dict(model: ModelInfo) -> dict:
    from dataclasses import asdict

    return asdict(model)
