"""``app``: launch the Streamlit app, with your own models in its model list.

``explorer app --model my_models.py:build --checkpoint weights.safetensors --server.port 8600``:
``--model SPEC`` (repeatable) adds a model spec (see ``explorer.models.spec``), ``--checkpoint``
gives weights to the ``--model`` before it, and everything else goes to ``streamlit run``
unchanged. The repository's ``.streamlit/config.toml`` settings are applied as flags (an
installed package has no such folder), unless the command line sets them itself.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HELP = "launch the Streamlit app (streamlit options pass through), optionally with --model SPEC"
PASS_THROUGH = True  # unknown options go to streamlit
MODELS_ENV = "EXPLORER_MODELS"  # JSON [{"spec": ..., "checkpoint": ...}] read by the app

# The settings of the repository's .streamlit/config.toml (tests/test_packaging.py keeps them
# equal): no e-mail prompt on a fresh machine, no usage statistics, and no full gc after every
# script run (with torch loaded it holds the GIL for 0.1-0.2 s on a small CPU), and no log warning
# when a shared link seeds the sidebar's widgets through session state (explorer/ui/sharing.py).
STREAMLIT_SETTINGS = {
    "server.showEmailPrompt": "false",
    "browser.gatherUsageStats": "false",
    "runner.postScriptGC": "false",
    "global.disableWidgetStateDuplicationWarning": "true",
}


class _ModelAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        models = list(getattr(namespace, "models", None) or [])
        if option_string == "--model":
            models.append({"spec": value, "checkpoint": None})
        elif not models:
            parser.error("--checkpoint belongs to the --model before it: give --model first")
        elif models[-1]["checkpoint"] is not None:
            parser.error(f"--model {models[-1]['spec']} has two --checkpoint")
        else:
            models[-1] = {**models[-1], "checkpoint": str(Path(value).resolve())}
        namespace.models = models


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", action=_ModelAction, dest="models", default=[],
                        metavar="SPEC", help="a model spec added to the sidebar's list: zoo name, "
                        "path/to/file.py:function, package.module:function, timm/<name> or "
                        "file.onnx (repeatable)")
    parser.add_argument("--checkpoint", action=_ModelAction, dest="models", metavar="WEIGHTS",
                        help="weights (.safetensors or a state dict) for the --model before it")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the model specs and print the streamlit command, run nothing")


def streamlit_command(extra: list[str]) -> list[str]:
    script = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    given = {a.split("=", 1)[0].lstrip("-") for a in extra if a.startswith("--")}
    flags = [f"--{k}={v}" for k, v in STREAMLIT_SETTINGS.items() if k not in given]
    return [sys.executable, "-m", "streamlit", "run", str(script), *flags, *extra]


def run(args: argparse.Namespace) -> int:
    from explorer.errors import InputError
    from explorer.models.spec import resolve
    for model in args.models:  # fail here, with the reason, not later in the browser
        try:
            resolve(model["spec"])
        except InputError as err:
            print(f"error: --model {model['spec']}: {err}", file=sys.stderr)
            return 2
        if model["checkpoint"] and not Path(model["checkpoint"]).is_file():
            print(f"error: --checkpoint {model['checkpoint']} is not a file", file=sys.stderr)
            return 2
    command = streamlit_command(list(args.extra))
    env = dict(os.environ)
    if args.models:
        env[MODELS_ENV] = json.dumps(args.models)
    if args.dry_run:
        print(" ".join(command))
        print(f"{MODELS_ENV}={env.get(MODELS_ENV, '')}")
        return 0
    return subprocess.call(command, env=env)
