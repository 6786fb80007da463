"""Every registered model on the command line, with the arguments it gives for a
run of seconds: fit, criticize, evaluate, and its fit rebuilt by ``load_fit``.

A new model is covered here by registering it (its ``smoke_fit_args``): no new test
code.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pyro
import pytest
import torch

import ppl_models
from ppl_models import get_model, list_models
from ppl_models.cli import main
from ppl_models.errors import CheckpointError
from ppl_models.registry import ModelSpec, register_model
from ppl_models.run_config import config_from_dict, config_to_dict, read_run_config
from ppl_models.settings import dropped_of, settings_of


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("name", list_models())
def test_fit_criticize_evaluate_and_reload(name, capsys, tmp_path):
    # In Pyro's default mode, with a user's parameter in the global store.
    pyro.clear_param_store()
    users = pyro.param("users_own", torch.ones(2)).detach().clone()
    spec = get_model(name)
    out = tmp_path / name
    fit = ["fit", name, *spec.smoke_fit_args(), "--device", "cpu", "--out", out]
    status, stdout, err = run_cli(capsys, *fit)
    assert status == 0, err
    fitted = summary_of(out)
    assert fitted["model"] == name
    shown = [key for key in spec.headline_keys if key in fitted]
    assert shown and all(f"  {key}: " in stdout for key in shown)
    # A fit criticises itself, and `criticize` later draws the same numbers.
    assert spec.criticism_keys and set(spec.criticism_keys) <= set(fitted)
    status, stdout, err = run_cli(capsys, "criticize", out, "--device", "cpu")
    assert status == 0, err
    recriticized = summary_of(out)
    for key in spec.criticism_keys:
        assert recriticized[key] == fitted[key], key
        assert f"  {key}: " in stdout

    status, stdout, err = run_cli(capsys, "evaluate", out, "--device", "cpu")
    assert status == 0 or (status == 2 and "has no 'evaluate' step" in err), err
    if status == 0:
        # It shows the numbers it computed, each written to the summary.
        evaluated = summary_of(out)
        assert spec.evaluation_keys and set(spec.evaluation_keys) <= set(evaluated)
        for key in spec.evaluation_keys:
            assert f"  {key}: " in stdout, key

    # config.json holds the config the fit ran with, settings resolved.
    config = read_run_config(spec.config_class, out)
    assert config_to_dict(config) == {
        k: v for k, v in json.loads((out / "config.json").read_text()).items()
        if k != "model"
    }  # fmt: skip

    # The model's fit, rebuilt from the run directory alone: a Fit holding the
    # run's config, or where the model has a spec of its own, its own fit object.
    loaded = ppl_models.load_fit(out, device="cpu")
    if isinstance(loaded, ppl_models.Fit):
        assert loaded.config == config
    else:
        assert type(loaded).__module__.startswith(f"ppl_models.models.{name}.")

    # The zoo's parameters lived in its modules: the user's store is as it was.
    assert list(pyro.get_param_store().keys()) == ["users_own"]
    assert torch.equal(pyro.param("users_own").detach(), users)
    assert pyro.settings.get("module_local_params") is False
    pyro.clear_param_store()


def test_load_fit_refuses_a_directory_without_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="is not a run directory"):
        ppl_models.load_fit(tmp_path)


def test_a_model_that_leaves_out_a_required_method_is_not_registered():
    class Incomplete(ModelSpec):
        name = "incomplete"
        description = "a spec without load_fit"
        inference_methods = {"map": "point estimates"}

    with pytest.raises(TypeError, match="'incomplete' does not define config_class, "):
        register_model(Incomplete)
    with pytest.raises(TypeError, match="'incomplete' does not define .*load_fit"):
        register_model(Incomplete)
    assert "incomplete" not in list_models()


@pytest.mark.parametrize("name", list_models())
def test_a_models_settings_have_help_and_go_through_config_json(name):
    spec = get_model(name)
    # Every field is a setting (settings_of refuses others) with a help text, but
    # those the class drops.
    for cls in (spec.config_class, spec.evaluate_class):
        if cls is not None:
            kept = [f.name for f in fields(cls) if f.name not in dropped_of(cls)]
            assert [s.name for s in settings_of(cls)] == kept
            assert all(s.help for s in settings_of(cls))
    config = spec.config_class()
    values = json.loads(json.dumps(config_to_dict(config)))
    assert config_from_dict(spec.config_class, values, "config.json") == config


def test_the_command_line_and_the_registry_name_no_model():
    # Adding a model touches only its package: the code that serves every model
    # names none of them, nor their summary entries, nor argparse in the registry.
    package = Path(ppl_models.__file__).parent
    shared = [*(package / "cli").glob("*.py"), *(package / "inference").glob("*.py"),
              package / "registry.py", package / "settings.py"]  # fmt: skip
    words = set(list_models())
    for name in list_models():
        spec = get_model(name)
        keys = spec.headline_keys + spec.criticism_keys + spec.evaluation_keys
        words |= set(keys) - set(ModelSpec.headline_keys)
    pattern = re.compile(rf"\b({'|'.join(sorted(words))})\b", re.IGNORECASE)
    for path in shared:
        found = pattern.findall(path.read_text())
        assert not found, f"{path.relative_to(package)} names {sorted(set(found))}"
    for path in [package / "registry.py", *(package / "models").rglob("*.py")]:
        assert "argparse" not in path.read_text(), path.relative_to(package)
    # The base that models build on names none of them either (its own summary
    # entries are the ones every such model has).
    names = re.compile(rf"\b({'|'.join(list_models())})\b", re.IGNORECASE)
    for path in (package / "fullbatch").glob("*.py"):
        found = names.findall(path.read_text())
        assert not found, f"{path.relative_to(package)} names {sorted(set(found))}"
