"""The `neuroonco` command line: one module per command group under `neuroonco.commands`.

Known errors (:class:`~neuroonco.errors.NeuroOncoError`) become one clean line and exit code 2;
under tests (`NEUROONCO_RAISE=1`, or when called through ``app`` directly) they raise.
"""

from __future__ import annotations

import os
import sys

import typer

from neuroonco.commands import (
    agreement,
    annotate,
    bench,
    finetune,
    ingest,
    instructions,
    review,
)
from neuroonco.errors import NeuroOncoError

app = typer.Typer(
    name="neuroonco",
    help="Turn brain-tumour MRI collections into instruction data and benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest.ingest_command)
app.command("annotate")(annotate.annotate_command)
app.add_typer(bench.app, name="bench")
app.command("instructions")(instructions.instructions_command)
app.command("finetune")(finetune.finetune_command)
app.command("finetune-compare")(finetune.compare_command)
app.command("agreement")(agreement.agreement_command)
app.command("review")(review.review_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except NeuroOncoError as exc:
        if os.environ.get("NEUROONCO_RAISE"):
            raise
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
