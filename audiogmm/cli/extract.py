"""``audiogmm extract``: features of every file into the cache, a shard store or Kaldi files."""

from __future__ import annotations

import click

from . import options
from .output import escape_name, report_skipped


@click.command("extract")
@click.argument("data", type=click.Path(exists=True))
@options.feature_options()
@options.run_options
@click.option("--skipped-csv", type=options.OutputPath(dir_okay=False),
              help="Write the skipped files and reasons here.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["cache", "kaldi"]), default="cache",
              show_default=True, help="cache: fill --cache DIR; kaldi: write "
              "feats.ark/feats.scp (+utt2spk) to --output DIR, for Kaldi tools and "
              "`audiogmm train DIR` (needs the kaldi extra).")  # fmt: skip
@click.option("-o", "--output", type=options.OutputPath(file_okay=False),
              help="Folder for --format kaldi.")
@click.option("--allow-pipes", is_flag=True, help="Run piped wav.scp entries ('cmd |') of a "
              "Kaldi DATA dir: shell commands written in a data file, so only for data you "
              "trust (--format kaldi).")  # fmt: skip
@click.option("--shards", "shards_dir", type=options.OutputPath(file_okay=False),
              help="Also write the features as a shard store here (for `audiogmm ubm`, Dask).")
@options.dask_option
@options.json_option
@click.pass_context
def command(ctx, data, preset, config_path, cache_dir, skipped_csv, fmt, output, allow_pipes,
            shards_dir, as_json, **_):  # fmt: skip
    """Extract features of every file in DATA into the cache (re-runs skip done work)."""
    from ..data import extract_many, read_manifest
    from ..io.atomic import check_writable
    from ..pipeline.classify import skipped_list

    config, opts = options.load_config(preset, config_path), options.run_options_of(ctx)
    failed = 0
    if fmt == "kaldi":
        from ..pipeline.kaldi import export_kaldi

        if not output:
            raise click.UsageError("--format kaldi needs --output DIR")
        out = export_kaldi(data, output, config=config, options=opts, allow_pipes=allow_pipes)
        text = (f"{out['n_utterances']} utterances ({out['n_frames']} frames) -> {out['scp']} "
                f"({len(out['skipped'])} skipped)")  # fmt: skip
    else:
        if not cache_dir:
            raise click.UsageError("extract needs --cache DIR (where the features go)")
        check_writable(cache_dir, folder=True)  # before the work, naming the user's path
        records = read_manifest(data)
        with options.executor([r.path for r in records]) as ex:
            res = extract_many(records, config=config, options=opts, executor=ex)
        if shards_dir:  # on top of the cache: the extracted (or cached) frames, in manifest order
            from ..data.shards import write_store

            write_store(shards_dir, ((r.path, r.label, res.features[r.path]) for r in records
                                     if r.path in res.features),
                        config_hash=config.content_hash(), config=config.to_json())  # fmt: skip
        if skipped_csv:
            res.write_skipped_csv(skipped_csv)
        failed = len(res.cache_errors)
        out = {"n_files": len(records), "n_extracted": res.n_extracted, "n_cached": res.n_cached,
               "cache_errors": res.cache_errors, "skipped": skipped_list(res),
               "n_frames": int(sum(x.shape[0] for x in res.features.values()))}  # fmt: skip
        text = (f"{len(res.features) - failed}/{len(records)} files ready in "
                f"{escape_name(cache_dir)} ({res.n_extracted - failed} extracted, {res.n_cached} "
                f"from cache, {len(out['skipped'])} skipped"
                + (f", {failed} not written" if failed else "") + ")")  # fmt: skip
    out["config_hash"] = config.content_hash()
    if as_json:
        options.echo_json(out)
    else:
        report_skipped(out["skipped"])
        click.echo(text)
    if failed:  # the cache is this command's output: a missing entry is a failure
        raise click.ClickException(escape_name(
            f"could not write {failed} cache entries; first: {res.cache_errors[0]}"))
