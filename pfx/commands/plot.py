"""``pfx plot``: draw training metrics, answer lengths or scores to a PNG file."""

from __future__ import annotations

import dataclasses

import click

from pfx.errors import RecordError
from pfx.options import io_options
from pfx.plotting import PLOT_KINDS, SCORE_FIELDS, Plot, ScoresPlot, detect_kind, require_matplotlib, save_figure
from pfx.runner import IOOptions, Run

_KIND_HELP = "; ".join(f"{name}: {plot_class.description}" for name, plot_class in PLOT_KINDS.items())


@click.command("plot")
@click.option("--kind", type=click.Choice(["auto", *PLOT_KINDS]), default="auto", show_default=True,
              help=f"What to plot. {_KIND_HELP}.")
@click.option("--score-field", type=click.Choice(["auto", *SCORE_FIELDS]), default="auto", show_default=True,
              help="Score that --kind scores draws: a reward (score), an implicit reward, or the summed "
                   "log-prob (logps, ref_logps; .mean for the per-token mean). auto: the first one the first record has.")
@click.option("--bins", type=click.IntRange(min=1), default=30, show_default=True, help="Bins per histogram.")
@click.option("--title", help="Figure title. Default: the input file names.")
@io_options
def command(io: IOOptions, kind: str, score_field: str, bins: int, title: str | None) -> None:
    """Plot training metrics, answer lengths or scores to a PNG file.

    train-dpo metrics JSONL gives loss, implicit rewards (chosen, rejected,
    margins), reward accuracy, log-probs, learning rate and gradient norm
    over steps. The JSON object of pfx stats gives length percentiles per
    field, the length bias and score counts. Pair, unpaired or list records
    give histograms of answer lengths in words and, for pairs, of the
    chosen-minus-rejected length difference. Records that pfx score or pfx
    label scored give histograms of one score per answer (a reward, an
    implicit reward or a log-prob; --score-field) and, for pairs, of the
    chosen-minus-rejected margin. For metrics, lengths and scores, each
    input file gets its own lines or histograms, so several runs or datasets
    can be compared in one figure; a stats figure takes one pfx stats object.
    --kind auto picks the kind from the first record that has one of these
    shapes.
    Needs matplotlib: pip install 'pfx[plot]'.

    \b
    Example:
      pfx plot fixtures/plot/metrics.jsonl -o /tmp/metrics.png
      pfx plot fixtures/plot/stats.json -o /tmp/stats.png
      pfx plot fixtures/plot/scored.jsonl -o /tmp/scores.png
      pfx plot --kind lengths fixtures/plot/scored.jsonl -o /tmp/lengths.png
    """
    output = io.output
    if output == "-" or not str(output).lower().endswith(".png"):
        raise click.UsageError(f"-o must name a .png file (the figure never goes to stdout), got {output!r}")
    require_matplotlib()

    # The run reads and rejects records as every command does, but writes no records:
    # with output left set, Run.finish would create a JSONL file at the PNG's path.
    run = Run("plot", dataclasses.replace(io, output=None))
    plot: Plot | None = None
    for item in run.items():
        try:
            if plot is None:
                kind = detect_kind(item.record) if kind == "auto" else kind
                plot = PLOT_KINDS[kind]()
                if isinstance(plot, ScoresPlot) and score_field != "auto":
                    plot.field_name = score_field
            plot.add(item.record, item.source)
        except RecordError as error:
            run.reject_error(item, error)
            continue
        run.count("plotted")

    if plot is not None:
        for name, n in plot.counts().items():
            run.count(name, n)
    if plot is None and not io.quiet:
        click.echo("pfx plot: warning: no records to plot; the figure says so", err=True)
    save_figure(plot, output, title or ", ".join(io.files or ["<stdin>"]), bins)
    run.extra["figure"] = output
    run.extra["kind"] = None if plot is None else kind
    if isinstance(plot, ScoresPlot):
        run.extra["score_field"] = plot.field_name
    run.finish()


def _mark_output_required(cmd: click.Command) -> None:
    # io_options defines -o for record output; here it names the figure and is required.
    for param in cmd.params:
        if param.name == "output":
            param.required = True
            param.help = "Write the figure to FILE.png (required)."
            param.metavar = "FILE.png"


_mark_output_required(command)
