"""``proxcompress data``: generate data sets that cannot be downloaded here.

::

    proxcompress data speech --out DIR [--seed N] [--speakers 40] [--phrasings N] [--repeats 1]
    proxcompress data kjv --out DIR [--vocab 10000] [--sample]

``speech`` synthesizes the spoken-command intent task with ``espeak-ng``
(:mod:`proxcompress.training.speech`); the output files are byte-identical for the same seed and
options. ``kjv`` builds the word-level language-modelling corpus from Debian's King James Bible
(``bible-kjv-text``; :mod:`proxcompress.training.text`): split by book, vocabulary of the most
frequent training words; deterministic, so byte-identical for the same options. Exit codes: 0
done, 2 bad input or the program / package missing (checked before any work). The speech
options are checked by :class:`~proxcompress.training.speech.SpeechOptions` (its field names
are the flags').
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from proxcompress.errors import InvalidInputError


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
    s.add_argument("--snr", default=None, metavar="LO,HI",
                   help="additive-noise SNR range in dB (default 10,30); a negative low end needs "
                   "the = form: --snr=-5,10")
    s.add_argument("--confusable", action="store_true",
                   help="add intents that differ from others by one word (the harder variant)")
    s.add_argument("--reverb", default=None, metavar="LO,HI",
                   help="reverberation time range in seconds (synthetic rooms; default: dry)")
    s.add_argument("--progress", action="store_true", help="show a progress bar")
    s.set_defaults(func=run_speech, _field_flags={"snr_db": "--snr", "reverb_rt60": "--reverb"})
    k = sub.add_parser(
        "kjv", help="word-level language-model corpus (King James Bible, bible-kjv-text)",
        description="Build the King James Bible language-modelling corpus from Debian's "
        "bible-kjv-text (bible -f 'Gen1:1-Rev22:21'): lowercased words, <eos> after every "
        "verse, a fixed split by book (validation: Joshua, Nehemiah, Ezekiel, Zephaniah, "
        "1 Corinthians, Titus, Revelation; test: Genesis, 1 Kings, Ecclesiastes, Obadiah, Mark, "
        "Colossians, 2 Peter; train: the other 52), a vocabulary of the most frequent training "
        "words (the rest <unk>). Writes train/valid/test.safetensors, vocab.txt and "
        "manifest.json into --out.")
    add_output(k, "--out", kind="folder", required=True, metavar="DIR",
               help="output folder (created)")
    k.add_argument("--vocab", type=int, default=10000,
                   help="vocabulary size with <unk> and <eos>, 3..1000000 (default 10000)")
    k.add_argument("--sample", action="store_true",
                   help="use the embedded 5-book sample instead of the package (tests)")
    k.set_defaults(func=run_kjv)


def run_speech(args: argparse.Namespace) -> int:
    from proxcompress.training.speech import SpeechOptions, generate_speech

    extra: dict[str, Any] = {"confusable": args.confusable}
    for flag, field, value in (("--snr", "snr_db", args.snr), ("--reverb", "reverb_rt60",
                                                                  args.reverb)):
        if value is not None:
            try:
                lo, hi = (float(v) for v in value.split(","))
            except ValueError:
                raise InvalidInputError(flag, f"{value!r} must be LO,HI (two numbers)"
                                        ) from None
            extra[field] = (lo, hi)
    opts = SpeechOptions(seed=args.seed, speakers=args.speakers, phrasings=args.phrasings,
                         repeats=args.repeats, test_every=args.test_every, **extra)
    path = generate_speech(args.out, opts, progress=args.progress)
    manifest = json.loads(path.read_text(encoding="utf-8"))
    counts = {k: len(v) for k, v in manifest["utterances"].items()}
    print(json.dumps({"out": args.out, "intents": len(manifest["intents"]), **counts}))
    return 0


def run_kjv(args: argparse.Namespace) -> int:
    from proxcompress.errors import InvalidInputError
    from proxcompress.training.text import (
        MAX_VOCAB,
        MIN_VOCAB,
        bible_text,
        build_corpus,
        sample_text,
        write_corpus,
    )

    if not MIN_VOCAB <= args.vocab <= MAX_VOCAB:
        raise InvalidInputError("--vocab", f"= {args.vocab}; accepted: an integer in "
                                f"[{MIN_VOCAB}, {MAX_VOCAB}]")
    text, source = (sample_text(), "embedded sample") if args.sample else bible_text()
    corpus = build_corpus(text, args.vocab)
    write_corpus(corpus, args.out, source)
    print(json.dumps({"out": args.out, "vocab": len(corpus.vocab),
                      **{s: int(t.shape[0]) for s, t in corpus.tokens.items()}}))
    return 0


__all__ = ["add_parsers", "run_kjv", "run_speech"]
