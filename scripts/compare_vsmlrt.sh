#!/usr/bin/env bash
# vidsr against VapourSynth + vs-mlrt's ONNX Runtime CPU back end, same clip, network and scale.
#
#   bash scripts/compare_vsmlrt.sh [--pairs 3] [--frames N] [--input CLIP] [-s 2] [--variant NAME:ENV=VAL,...]
#
# Sets up, once and from PyPI only, a Python >= 3.12 virtual environment outside the
# repository (vs-mlrt's wheels need 3.12) with vapoursynth, vapoursynth-mlrt-ort and
# vapoursynth-bestsource, writes VapourSynth's configuration, installs `onnx` into the
# Python running vidsr if it is missing (torch.onnx.export needs it; vidsr does not),
# then runs scripts/compare_vsmlrt.py with that Python. Results: vsmlrt-compare/ (or --out).
#
# Environment: PYTHON (vidsr's interpreter, default: python), PY312 (a Python >= 3.12),
# VIDSR_PEERS (where the environment goes, default ~/.cache/vidsr-peers).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
peers="${VIDSR_PEERS:-$HOME/.cache/vidsr-peers}"
venv="$peers/vsmlrt"

if [ ! -x "$venv/bin/vspipe" ]; then
    py312="${PY312:-}"
    if [ -z "$py312" ]; then
        # pyenv's interpreters are not on PATH unless a shell activated one: ask pyenv where they are.
        pyenvs=""
        if command -v pyenv >/dev/null 2>&1; then
            for v in 3.12 3.13; do
                prefix="$(pyenv prefix "$v" 2>/dev/null || true)"
                [ -n "$prefix" ] && pyenvs="$pyenvs $prefix/bin/python"
            done
        fi
        for cand in python3.13 python3.12 $pyenvs; do
            if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
                py312="$cand"; break
            fi
        done
    fi
    [ -n "$py312" ] || { echo "compare_vsmlrt: need Python >= 3.12 for vs-mlrt's wheels (set PY312)" >&2; exit 1; }
    mkdir -p "$peers"
    "$py312" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q vapoursynth vapoursynth-mlrt-ort vapoursynth-bestsource
fi
# VapourSynth finds its script library and plugins through this file, which `vapoursynth config`
# writes for the environment it runs from: write it again unless it names this environment.
vs_toml="${XDG_CONFIG_HOME:-$HOME/.config}/vapoursynth/vapoursynth.toml"
if ! grep -qF "$venv/" "$vs_toml" 2>/dev/null; then
    "$venv/bin/vapoursynth" config
fi
"$python" -c 'import onnx' 2>/dev/null || "$python" -m pip install -q onnx

exec "$python" "$here/compare_vsmlrt.py" --vspipe "$venv/bin/vspipe" "$@"
