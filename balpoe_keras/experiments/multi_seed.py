"""`--seeds=1,2,3,4,5`: the seeds of one setting in one JAX program.

`run_multi_seed(config)` builds one model per seed (each initialised as
its single-seed run would be), trains them together with
`training.jax_multi_seed` on the in-memory input path, then writes one
run folder per seed (`<workdir>/seed_<s>/`: report, `model.keras`, export)
and the mean ± std over the seeds (`<workdir>/report/aggregate.md` and
`.json`), as the paper's tables.
"""

import dataclasses
import json
import os

import keras

from balpoe_keras.experiments import inputs
from balpoe_keras.experiments import runner
from balpoe_keras.experiments import workdir as workdir_lib
from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.training.run_folder import RunFolder


def run_multi_seed(config, *, overwrite=False):
    """Trains and reports every seed of `config.seeds`; returns the
    aggregate dict (`evaluation.aggregate.aggregate_reports`)."""
    from balpoe_keras import evaluation
    from balpoe_keras.training import jax_multi_seed

    if keras.backend.backend() != "jax":
        raise ConfigError(
            f"--seeds trains several seeds in one JAX program; this is the "
            f"{keras.backend.backend()} backend. Use KERAS_BACKEND=jax, or "
            "run one --seed at a time.")
    inputs.check_data_dir(config)
    folder = RunFolder(config.workdir)
    with folder.lock():
        if overwrite:
            folder.remove_outputs()
        workdir_lib.check_workdir(config)
        data = inputs.load_data(config)
        if inputs.resolve_input_pipeline(config, data) != "arrays":
            raise ConfigError("--seeds needs --input_pipeline=arrays (or "
                              "auto) and an in-memory dataset.")
        workdir_lib.check_data(config, data)
        workdir_lib.record_config(config, folder)
        workdir_lib.record_data(data, folder)
        steps = inputs.steps_per_epoch(config, len(data.train), 1)
        per_seed = [dataclasses.replace(config, seed=s, seeds=(),
                                        workdir=os.path.join(
                                            config.workdir, f"seed_{s}"))
                    for s in config.seeds]
        dataset_fns = [inputs.make_train_dataset_fn(c, data, 1)
                       for c in per_seed]
        trainer = jax_multi_seed.MultiSeedTrainer(
            lambda seed: runner.build_model(config, data.class_counts,
                                            steps, data.train.class_names),
            config.seeds, dataset_fns[0](0)[0])
        start, seconds = jax_multi_seed.fit_multi_seed(
            trainer, dataset_fns, epochs=config.epochs, workdir=folder,
            steps_per_epoch=steps)
        reports = []
        for index, seed_config in enumerate(per_seed):
            os.makedirs(seed_config.workdir, exist_ok=True)
            workdir_lib.record_config(seed_config)
            reports.append(runner.evaluate_and_export(
                seed_config, data, trainer.seed_model(index),
                {"train_seconds_this_invocation": round(seconds, 1),
                 "resumed_from_epoch": start,
                 "trained_with_seeds": list(config.seeds)}))
        aggregated = evaluation.aggregate_reports(
            json.loads(json.dumps(reports, default=_jsonable)))
        _write_aggregate(config.workdir, aggregated, per_seed)
        return aggregated


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _write_aggregate(workdir, aggregated, per_seed):
    from balpoe_keras import evaluation

    out = RunFolder(workdir).report_dir
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "aggregate.json"), "w") as f:
        json.dump(aggregated, f, indent=1, default=_jsonable)
    text = evaluation.format_aggregate_markdown(
        aggregated, [os.path.join(RunFolder(c.workdir).report_dir,
                                  "report.json") for c in per_seed])
    with open(os.path.join(out, "aggregate.md"), "w") as f:
        f.write(text + "\n")
    print(text)
