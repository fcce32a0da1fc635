"""Run the repository's scripts (train.py, eval.py, python -m ...) in a fresh interpreter."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_env(**extra):
    """The environment of a script: ours, with `extra` set (a value None removes the name)."""
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _command(script, args):
    """`script` is a path under the repository root or `-m module`."""
    target = script.split() if script.startswith("-m ") else [os.path.join(ROOT, script)]
    return [sys.executable, *target, *args]


def run(script, *args, timeout=600, **env):
    """`python <script> args...` from the repository root; returns the CompletedProcess."""
    return subprocess.run(_command(script, args), cwd=ROOT, env=script_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def start(script, *args, **env):
    """Like `run` but returns the running Popen (stdout/stderr to pipes). Callers bound it:
    `communicate(timeout=...)`, and a kill when a wait of theirs runs out."""
    return subprocess.Popen(_command(script, args), cwd=ROOT, env=script_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
