"""``proxcompress data``: generate data sets that cannot be downloaded here.

::

    proxcompress data speech --out DIR [--seed N] [--speakers 40] [--phrasings N] [--repeats 1]

``speech`` synthesizes the spoken-command intent task with ``espeak-ng``
(:mod:`proxcompress.training.speech`); the output files are byte-identical for the same seed and
options. Exit codes: 0 done, 2 bad input or ``espeak-ng`` missing. The options are checked by
:class:`~proxcompress.training.speech.SpeechOptions` (its field names are the flags').
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parsers(subparsers: Any) -> None:
    """Register ``data`` (with the ``speech`` generator)."""
    from proxcompress.outputs import add_output

    p = subparsers.add_parser(
        "data", help="generate a data set (speech: spoken commands with espeak-ng)",
        description="Generate data sets locally.")
    sub = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    s = sub.add_parser(
        "speech", help="spoken-command intents (26 intents, espeak-ng speakers)",
        description="Synthesize the spoken-command intent task with espeak-ng: 26 intents "
        "(action, object, location) with 3-4 phrasings each, speakers = espeak-ng voices x "
        "variants with their own speed and pitch, per-utterance speed / pitch jitter, lead "
        "silence, gain and white noise; a fixed speaker-disjoint train/test split. Writes "
        "train.safetensors, test.safetensors and manifest.json into --out.")
    add_output(s, "--out", kind="folder", required=True, metavar="DIR",
               help="output folder (created)")
    s.add_argument("--seed", type=int, default=0,
                   help="random seed (default 0)")
    s.add_argument("--speakers", type=int, default=40,
                   help="catalogue speakers to use, 2..96 (default 40)")
    s.add_argument("--phrasings", type=int, default=None,
                   help="phrasings per intent (default: all, 3-4)")
    s.add_argument("--repeats", type=int, default=1,
                   help="renditions per speaker and phrasing (default 1)")
    s.add_argument("--test-every", type=int, default=5,
                   help="every N-th speaker is a test speaker (default 5)")
    s.add_argument("--progress", action="store_true", help="show a progress bar")
    s.set_defaults(func=run_speech)


def run_speech(args: argparse.Namespace) -> int:
    from proxcompress.training.speech import SpeechOptions, generate_speech

    opts = SpeechOptions(seed=args.seed, speakers=args.speakers, phrasings=args.phrasings,
                         repeats=args.repeats, test_every=args.test_every)
    path = generate_speech(args.out, opts, progress=args.progress)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    counts = {k: len(v) for k, v in manifest["utterances"].items()}
    print(json.dumps({"out": args.out, "intents": len(manifest["intents"]), **counts}))
    return 0


__all__ = ["add_parsers", "run_speech"]
