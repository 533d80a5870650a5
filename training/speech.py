"""A spoken-command intent task made locally with ``espeak-ng``: data, log-mel features, a ResNet.

The low-bit shift SLU paper (Avila, Bibi, Yang, Li, Xing, Chen, Interspeech 2022,
arXiv:2207.07497; methods.md section 6) evaluates end-to-end intent accuracy, probably on Fluent
Speech Commands (FSC: Lugosch et al., Interspeech 2019), whose intents are *(action, object,
location)* triples. FSC cannot be downloaded here, so :func:`generate_speech` synthesizes a task
in its spirit:

* :data:`INTENTS`: 26 intents (e.g. ``activate|lights|kitchen``, ``bring|juice|none``), each with
  3-4 phrasings (``"turn on the kitchen lights"``, ``"kitchen lights on"``, ...);
* speakers: an ``espeak-ng`` voice (8 English accents) with a variant (12 male / female
  voicings), 96 in all, in a fixed catalogue order; each speaker gets a base speed (130-190 words
  per minute) and pitch (30-70 of espeak's 0-99);
* per utterance: speed +-15 wpm and pitch +-8 around the speaker's, a word gap of 0-2 (x10 ms),
  a random lead of 0-250 ms silence, a gain of 0.5-1, and white Gaussian noise at an SNR of
  10-30 dB (w.r.t. the clean utterance's power);
* a fixed speaker-disjoint split: of the first ``speakers`` catalogue speakers, every
  ``test_every``-th (positions ``test_every - 1, 2 test_every - 1, ...``) is a test speaker;
  all their utterances are test data, the others' training data.

Audio is espeak's 22050 Hz output resampled to 16 kHz (``scipy.signal.resample_poly``), stored
as int16. Randomness comes from ``numpy.random.default_rng([seed, i])`` per speaker and per
utterance, so the files are byte-identical for the same seed, options and espeak-ng build
(the manifest records its version).

Files in ``out``: ``train.safetensors`` and ``test.safetensors`` (``audio`` int16, all
utterances concatenated; ``offsets`` int64, ``N + 1`` start indices; ``labels`` int64;
``speakers`` int64) and ``manifest.json`` (written last: intents, phrasings, speakers and their
split, every utterance's text and parameters, options, SHA-256 of both tensor files). Nothing is
pickled.

Features (:func:`log_mel`): 25 ms Hann windows every 10 ms (``n_fft = 512``), power spectrum,
40 triangular HTK-mel filters on 20-8000 Hz, ``log(mel + 1e-6)``, each utterance padded with
zeros (or cut) to ``seconds`` and normalized to zero mean and unit variance (per utterance).

Model (:class:`~proxcompress.training.models.speech.SpeechResNet`, also importable from here):
a small ResNet over the (1, mels, frames) image: a 3x3 stem with stride 2, three stages of basic
blocks (He et al., CVPR 2016) at widths ``w, 2w, 4w`` with strides 1, 2, 2, global average
pooling, a linear classifier.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from proxcompress.atomic import sha256_file, write_atomic, write_text_atomic
from proxcompress.errors import InvalidInputError
from proxcompress.training.config import DEFAULT_STANDARDIZE, STANDARDIZE
from proxcompress.training.data import Dataset, read_manifest
from proxcompress.training.models.speech import SpeechResNet

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
FORMAT = "proxcompress-speech-1"

_LIGHTS_ON = ["turn on the {loc} lights", "switch on the lights in the {loc}",
              "{loc} lights on", "lights on in the {loc} please"]
_LIGHTS_OFF = ["turn off the {loc} lights", "switch off the lights in the {loc}",
               "{loc} lights off", "lights off in the {loc} please"]
_HEAT_UP = ["turn up the heat in the {loc}", "make the {loc} warmer",
            "increase the temperature in the {loc}"]
_HEAT_DOWN = ["turn down the heat in the {loc}", "make the {loc} cooler",
              "decrease the temperature in the {loc}"]

#: intent label ``action|object|location`` -> phrasings
INTENTS: dict[str, tuple[str, ...]] = {
    "activate|lights|none": ("turn on the lights", "switch on the lights", "lights on",
                             "turn the lights on"),
    **{f"activate|lights|{loc}": tuple(p.format(loc=loc) for p in _LIGHTS_ON)
       for loc in ("kitchen", "bedroom", "washroom")},
    "deactivate|lights|none": ("turn off the lights", "switch off the lights", "lights off",
                               "turn the lights off"),
    **{f"deactivate|lights|{loc}": tuple(p.format(loc=loc) for p in _LIGHTS_OFF)
       for loc in ("kitchen", "bedroom", "washroom")},
    "increase|heat|none": ("turn up the heat", "make it warmer", "increase the temperature"),
    **{f"increase|heat|{loc}": tuple(p.format(loc=loc) for p in _HEAT_UP)
       for loc in ("kitchen", "bedroom")},
    "decrease|heat|none": ("turn down the heat", "make it cooler", "decrease the temperature"),
    **{f"decrease|heat|{loc}": tuple(p.format(loc=loc) for p in _HEAT_DOWN)
       for loc in ("kitchen", "bedroom")},
    "increase|volume|none": ("turn up the volume", "louder please", "increase the volume"),
    "decrease|volume|none": ("turn down the volume", "quieter please", "decrease the volume"),
    "activate|music|none": ("play some music", "put on some music", "start the music"),
    "deactivate|music|none": ("stop the music", "turn off the music", "pause the music"),
    "activate|lamp|none": ("turn on the lamp", "switch the lamp on", "lamp on"),
    "deactivate|lamp|none": ("turn off the lamp", "switch the lamp off", "lamp off"),
    "bring|newspaper|none": ("bring me the newspaper", "get the newspaper",
                             "fetch the paper please"),
    "bring|juice|none": ("bring me some juice", "get me a juice", "I would like some juice"),
    "bring|socks|none": ("bring me my socks", "get my socks", "fetch the socks please"),
    "bring|shoes|none": ("bring me my shoes", "get my shoes", "fetch the shoes please"),
    "change language|english|none": ("switch the language to English",
                                     "change the language to English", "speak English"),
    "change language|german|none": ("switch the language to German",
                                    "change the language to German", "speak German"),
}

#: the harder variant's extra intents (``SpeechOptions.confusable``): phrasings that differ from
#: existing ones by one word (bathroom / washroom / bedroom, lamp / lights, shirt / shoes /
#: socks, French / English / German)
CONFUSABLE_INTENTS: dict[str, tuple[str, ...]] = {
    **{f"activate|lights|{loc}": tuple(p.format(loc=loc) for p in _LIGHTS_ON)
       for loc in ("bathroom", "living room")},
    **{f"deactivate|lights|{loc}": tuple(p.format(loc=loc) for p in _LIGHTS_OFF)
       for loc in ("bathroom", "living room")},
    **{f"increase|heat|{loc}": tuple(p.format(loc=loc) for p in _HEAT_UP)
       for loc in ("bathroom", "washroom")},
    **{f"decrease|heat|{loc}": tuple(p.format(loc=loc) for p in _HEAT_DOWN)
       for loc in ("bathroom", "washroom")},
    "activate|lamp|bedroom": ("turn on the bedroom lamp", "switch the bedroom lamp on",
                              "bedroom lamp on"),
    "deactivate|lamp|bedroom": ("turn off the bedroom lamp", "switch the bedroom lamp off",
                                "bedroom lamp off"),
    "bring|shirt|none": ("bring me my shirt", "get my shirt", "fetch the shirt please"),
    "change language|french|none": ("switch the language to French",
                                    "change the language to French", "speak French"),
}

#: espeak-ng voices (accents) and variants (voicings) making up the speakers
VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
          "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
#: fixed seed of the catalogue order (independent of the data seed: the split is fixed)
_CATALOGUE_SEED = 20220715


def speaker_catalogue() -> list[tuple[str, str]]:
    """The 96 ``(voice, variant)`` speakers in their fixed order (a seeded shuffle, so the
    first speakers already mix accents and voicings)."""
    pairs = [(v, var) for v in VOICES for var in VARIANTS]
    order = np.random.default_rng(_CATALOGUE_SEED).permutation(len(pairs))
    return [pairs[i] for i in order]


@dataclass(frozen=True)
class SpeechOptions:
    """What :func:`generate_speech` makes.

    Attributes:
        seed: seeds every random choice.
        speakers: how many catalogue speakers (2..96; default 40).
        phrasings: phrasings per intent (``None``: all, 3-4).
        repeats: renditions of each (speaker, phrasing) with fresh speed / pitch / noise.
        test_every: every that many-th speaker is a test speaker (default 5: 20%).
        snr_db: range of the additive-noise SNR in dB (default 10-30) [our choice].
        speed_jitter: +- words per minute around the speaker's base speed (default 15).
        pitch_jitter: +- espeak pitch units around the speaker's base pitch (default 8).
        confusable: add :data:`CONFUSABLE_INTENTS` (the harder variant) [our choice].
        reverb_rt60: range of a synthetic room's reverberation time in seconds, drawn per
            utterance (``None``: dry) [our choice]: the clean speech is convolved with an
            exponentially decaying Gaussian-noise impulse response (:func:`room_response`)
            before the noise is added.
    """

    seed: int = 0
    speakers: int = 40
    phrasings: int | None = None
    repeats: int = 1
    test_every: int = 5
    snr_db: tuple[float, float] = (10.0, 30.0)
    speed_jitter: int = 15
    pitch_jitter: int = 8
    confusable: bool = False
    reverb_rt60: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        def integer(name: str, low: int, high: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise InvalidInputError(name, f"= {v!r}; accepted: an integer in [{low}, {high}]")

        integer("seed", 0, 2**32 - 1)
        integer("speakers", 2, len(VOICES) * len(VARIANTS))
        integer("repeats", 1, 100)
        integer("test_every", 2, 100)
        integer("speed_jitter", 0, 40)
        integer("pitch_jitter", 0, 20)
        if self.phrasings is not None:
            integer("phrasings", 1, 10)
        lo, hi = self.snr_db
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise InvalidInputError("snr_db", f"= {self.snr_db!r} must be a finite (low, high)")
        if self.reverb_rt60 is not None:
            lo, hi = self.reverb_rt60
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 3):
                raise InvalidInputError("reverb_rt60", f"= {self.reverb_rt60!r} must be "
                                        "(low, high) seconds with 0 < low <= high <= 3")

    def intents(self) -> dict[str, tuple[str, ...]]:
        """The intents and phrasings this data set uses."""
        return {**INTENTS, **CONFUSABLE_INTENTS} if self.confusable else dict(INTENTS)

    def test_speakers(self) -> set[int]:
        """Catalogue positions of the test speakers (the last one if none falls in range)."""
        chosen = {i for i in range(self.speakers) if i % self.test_every == self.test_every - 1}
        return chosen or {self.speakers - 1}


@dataclass(frozen=True)
class Speaker:
    """One speaker: catalogue position ``id``, espeak-ng ``voice`` + ``variant``, ``split``,
    base ``speed`` (words per minute) and ``pitch`` (0-99)."""

    id: int
    voice: str
    variant: str
    split: str
    speed: int
    pitch: int


def espeak_version() -> str:
    """``espeak-ng --version`` (first line), or raise if the program is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng: not found; install it (Debian: apt-get install "
                                "espeak-ng)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[0]


def synthesize(text: str, voice: str, speed: int, pitch: int, gap: int, tmp: Path) -> np.ndarray:
    """One utterance from ``espeak-ng`` as float64 samples at 22050 Hz in [-1, 1]."""
    wav = tmp / "utterance.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-g",
                    str(gap), "-z", "-w", str(wav), text], check=True, capture_output=True)
    with wave.open(str(wav), "rb") as handle:
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1 \
                or handle.getframerate() != ESPEAK_RATE:
            raise InvalidInputError("espeak-ng", "expected 16-bit mono 22050 Hz output")
        raw = handle.readframes(handle.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


def room_response(rt60: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
                  ) -> np.ndarray:
    """A synthetic room impulse response: the direct path (1 at ``t = 0``) plus Gaussian noise
    decaying by 60 dB over ``rt60`` seconds (``exp(-6.908 t / rt60)``), the tail scaled to the
    direct path's energy (a diffuse field of equal power)."""
    n = max(2, int(round(rt60 * sample_rate)))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)
    tail[0] = 0.0
    tail /= max(float(np.sqrt(np.sum(tail**2))), 1e-12)
    tail[0] = 1.0
    return tail


def _render(clean22k: np.ndarray, rng: np.random.Generator, opts: SpeechOptions
            ) -> tuple[np.ndarray, dict[str, float]]:
    """Resample to 16 kHz, reverberation (``reverb_rt60``), lead silence, gain, white noise at
    a random SNR; int16."""
    from scipy.signal import fftconvolve, resample_poly

    speech = resample_poly(clean22k, 320, 441)
    extra: dict[str, float] = {}
    if opts.reverb_rt60 is not None:
        rt60 = float(rng.uniform(*opts.reverb_rt60))
        wet = fftconvolve(speech, room_response(rt60, rng))
        speech = wet * (np.max(np.abs(speech)) / max(float(np.max(np.abs(wet))), 1e-12))
        extra["rt60_s"] = round(rt60, 6)
    lead = int(rng.integers(0, SAMPLE_RATE // 4 + 1))
    gain = float(rng.uniform(0.5, 1.0))
    snr = float(rng.uniform(*opts.snr_db))
    signal = np.concatenate([np.zeros(lead), speech]) * gain
    power = float(np.mean(speech**2)) * gain**2
    noise = rng.standard_normal(signal.shape[0]) * math.sqrt(power / 10 ** (snr / 10))
    mixed = np.clip(signal + noise, -1.0, 32767 / 32768)
    audio = np.round(mixed * 32768).astype(np.int16)
    return audio, {"lead_ms": round(1000 * lead / SAMPLE_RATE, 3), "gain": round(gain, 6),
                   "snr_db": round(snr, 6), **extra}


def _write_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    from safetensors.numpy import save_file

    write_atomic(path, lambda tmp: save_file(tensors, str(tmp)))


def generate_speech(out: str | os.PathLike[str], options: SpeechOptions | None = None,
                    progress: bool = False) -> Path:
    """Generate the spoken-command data set into the folder ``out`` (module docstring).

    Returns the manifest path. Raises ``FileNotFoundError`` without ``espeak-ng``.
    """
    opts = options or SpeechOptions()
    version = espeak_version()
    catalogue = speaker_catalogue()[: opts.speakers]
    test_ids = opts.test_speakers()
    table = opts.intents()
    labels = sorted(table)
    speakers: list[Speaker] = []
    for i, (voice, variant) in enumerate(catalogue):
        rng = np.random.default_rng([opts.seed, 0, i])
        speakers.append(Speaker(i, voice, variant, "test" if i in test_ids else "train",
                                int(rng.integers(130, 191)), int(rng.integers(30, 71))))
    jobs = [(s, label, text, r) for s in speakers for label in labels
            for text in table[label][: opts.phrasings] for r in range(opts.repeats)]
    parts: dict[str, dict[str, list[Any]]] = {
        split: {"audio": [], "labels": [], "speakers": [], "meta": []}
        for split in ("train", "test")}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="espeak-ng", unit="utt")
    with tempfile.TemporaryDirectory(prefix="proxcompress-speech-") as tmp:
        for index, (spk, label, text, rep) in enumerate(jobs):
            rng = np.random.default_rng([opts.seed, 1, index])
            speed = int(np.clip(spk.speed + int(rng.integers(-opts.speed_jitter,
                                                             opts.speed_jitter + 1)), 80, 450))
            pitch = int(np.clip(spk.pitch + int(rng.integers(-opts.pitch_jitter,
                                                             opts.pitch_jitter + 1)), 0, 99))
            gap = int(rng.integers(0, 3))
            clean = synthesize(text, f"{spk.voice}+{spk.variant}", speed, pitch, gap, Path(tmp))
            audio, extra = _render(clean, rng, opts)
            part = parts[spk.split]
            part["audio"].append(audio)
            part["labels"].append(labels.index(label))
            part["speakers"].append(spk.id)
            part["meta"].append({"text": text, "intent": label, "speaker": spk.id,
                                 "repeat": rep, "speed": speed, "pitch": pitch, "gap": gap,
                                 "samples": int(audio.shape[0]), **extra})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for split, part in parts.items():
        lengths = np.array([a.shape[0] for a in part["audio"]], dtype=np.int64)
        tensors = {
            "audio": np.concatenate(part["audio"]) if part["audio"] else np.zeros(0, np.int16),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "labels": np.array(part["labels"], dtype=np.int64),
            "speakers": np.array(part["speakers"], dtype=np.int64),
        }
        name = f"{split}.safetensors"
        _write_tensors(root / name, tensors)
        hashes[name] = sha256_file(root / name)
    manifest = {
        "format": FORMAT, "espeak_ng": version, "sample_rate": SAMPLE_RATE,
        "options": {**asdict(opts), "snr_db": list(opts.snr_db),
                    "reverb_rt60": None if opts.reverb_rt60 is None else list(opts.reverb_rt60)},
        "intents": labels, "phrasings": {k: list(table[k][: opts.phrasings]) for k in labels},
        "speakers": [asdict(s) for s in speakers], "sha256": hashes,
        "utterances": {split: part["meta"] for split, part in parts.items()},
    }
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    return write_text_atomic(root / "manifest.json", text)


# ---------------------------------------------------------------------------------- features
def mel_filterbank(n_mels: int = 40, n_fft: int = 512, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale ``m = 2595 log10(1 + f / 700)``:
    ``(n_mels, n_fft // 2 + 1)``, filter ``i`` rising from mel point ``i`` to ``i + 1`` and
    falling to ``i + 2`` of ``n_mels + 2`` equally spaced points on ``[fmin, fmax]``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise InvalidInputError("fmax", f"need 0 <= fmin ({fmin}) < fmax ({fmax}) <= "
                                f"sample_rate / 2 ({sample_rate / 2})")
    if n_mels < 1 or n_fft < 2:
        raise InvalidInputError("n_mels", f"n_mels = {n_mels}, n_fft = {n_fft} must be >= 1, 2")

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    points = 700.0 * (10 ** (np.linspace(mel(np.array(fmin)), mel(np.array(fmax)),
                                         n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    rise = (freqs[None] - lower) / (center - lower)
    fall = (upper - freqs[None]) / (upper - center)
    return np.maximum(0.0, np.minimum(rise, fall)).astype(np.float32)


def frame_hop(sample_rate: int, hop_ms: float = 10.0) -> int:
    """Samples between two log-mel frames (:func:`log_mel`'s ``hop_ms``)."""
    return int(round(sample_rate * hop_ms / 1000))


def log_mel(audio: Tensor, sample_rate: int = SAMPLE_RATE, n_mels: int = 40,
            n_fft: int = 512, win_ms: float = 25.0, hop_ms: float = 10.0) -> Tensor:
    """Log-mel spectrogram ``(..., n_mels, frames)`` of float waveforms ``(..., samples)``:
    Hann window of ``win_ms``, hop ``hop_ms``, centred frames, power spectrum,
    :func:`mel_filterbank`, ``log(. + 1e-6)``."""
    win = int(round(sample_rate * win_ms / 1000))
    hop = frame_hop(sample_rate, hop_ms)
    if not 1 <= win <= n_fft or hop < 1:
        raise InvalidInputError("win_ms", f"window {win} samples must lie in [1, n_fft = "
                                f"{n_fft}] and the hop ({hop}) be >= 1")
    lead = audio.shape[:-1]
    flat = audio.reshape(-1, audio.shape[-1]).to(torch.float32)
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=win,
                      window=torch.hann_window(win, dtype=torch.float32), center=True,
                      return_complex=True)
    power = spec.real**2 + spec.imag**2
    bank = torch.from_numpy(mel_filterbank(n_mels, n_fft, sample_rate))
    mel = torch.log(torch.einsum("mf,bft->bmt", bank, power) + 1e-6)
    return mel.reshape(*lead, n_mels, mel.shape[-1])


def _read_split(root: Path, name: str, digest: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from proxcompress.errors import MissingInputError

    path = root / name
    if not path.is_file():
        raise MissingInputError("data.root", f"{str(path)!r} is missing")
    if sha256_file(path) != digest:
        raise InvalidInputError("data.root", f"{str(path)!r} does not match its SHA-256 in "
                                "manifest.json (corrupt or from another generation)")
    try:
        t = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError("data.root", f"{str(path)!r} is not a readable safetensors "
                                f"file ({str(exc)[:200]})") from None
    kinds = {"audio": "i", "offsets": "i", "labels": "i", "speakers": "i"}
    for key, kind in kinds.items():
        if key not in t or t[key].dtype.kind != kind or t[key].ndim != 1:
            raise InvalidInputError("data.root", f"{str(path)!r} lacks a 1-D integer array "
                                    f"{key!r}")
    n = t["labels"].shape[0]
    off = t["offsets"]
    if (t["audio"].dtype != np.int16 or off.shape != (n + 1,) or t["speakers"].shape != (n,)
            or off[0] != 0 or off[-1] != t["audio"].shape[0] or np.any(np.diff(off) < 0)):
        raise InvalidInputError("data.root", f"{str(path)!r} has inconsistent arrays")
    return t


def speech_manifest(root: str | os.PathLike[str], field: str = "data.root") -> dict[str, Any]:
    """The ``manifest.json`` of a :func:`generate_speech` folder after checking its structure
    (:func:`proxcompress.training.data.read_manifest`: an object of this format with a
    SHA-256 for each split file) and content: the sample rate the features assume and the
    task's intents (errors name ``field``)."""
    base = Path(root)
    manifest = read_manifest(base, FORMAT, "proxcompress data speech", field,
                             files=("train.safetensors", "test.safetensors"))
    path = base / "manifest.json"

    def bad(what: str) -> InvalidInputError:
        return InvalidInputError(field, f"{str(path)!r} is not a valid {FORMAT} manifest: "
                                 f"{what}")

    if manifest.get("sample_rate") != SAMPLE_RATE:
        raise bad(f"sample_rate must be {SAMPLE_RATE}")
    intents = manifest.get("intents")
    known = {**INTENTS, **CONFUSABLE_INTENTS}
    if (not isinstance(intents, list) or not intents or len(set(map(str, intents))) != len(intents)
            or not all(isinstance(i, str) and i in known for i in intents)):
        raise bad("intents must be a list of distinct intents of the task")
    return manifest


def intent_count(root: str | os.PathLike[str] | None) -> int:
    """The number of intents of the data set in ``root`` (its checked manifest), or of the
    standard set when ``root`` holds none yet."""
    if root and (Path(root) / "manifest.json").is_file():
        return len(speech_manifest(root)["intents"])
    return len(INTENTS)


def feature_shape(n_mels: int = 40, seconds: float = 3.5) -> tuple[int, int, int]:
    """Shape ``(1, n_mels, frames)`` of one :func:`load_speech` input (10 ms hop)."""
    return 1, n_mels, 1 + int(round(seconds * SAMPLE_RATE)) // int(round(SAMPLE_RATE / 100))


#: utterances per feature batch in :func:`load_speech`: the STFT of a whole training set at once
#: (complex64, 257 bins x 351 frames per utterance) peaked at 10.7 GB for the harder variant's
#: 8 064 utterances and got worker processes OOM-killed; 256 keep it near 0.4 GB. Every
#: utterance's features are computed independently, so the batch size changes no bit.
FEATURE_CHUNK = 256


def _features(wav: Tensor, sample_rate: int, n_mels: int, own: Tensor | None = None) -> Tensor:
    """Per-utterance standardized log-mel features ``(N, 1, n_mels, frames)`` of ``wav``
    ``(N, samples)``, :data:`FEATURE_CHUNK` utterances at a time. ``own``: each utterance's
    own frames (before its zero padding); given, the mean and standard deviation are taken over
    those frames only and the padding frames are set to 0
    (:data:`~proxcompress.training.config.STANDARDIZE`)."""
    n = wav.shape[0]
    # no batch of one utterance unless there is only one (torch takes another path for a
    # batch of one, a few ulps apart from the batched one)
    bounds = list(range(0, n, max(2, FEATURE_CHUNK))) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        feats = log_mel(wav[start:stop], sample_rate, n_mels)
        if own is None:
            mean = feats.mean(dim=(1, 2), keepdim=True)
            std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
            parts.append(((feats - mean) / std).unsqueeze(1))
            continue
        frames = feats.shape[-1]
        keep = own[start:stop].clamp(1, frames)
        mask = (torch.arange(frames)[None, :] < keep[:, None]).to(feats.dtype)[:, None, :]
        count = (keep * n_mels).to(feats.dtype)[:, None, None]
        mean = (feats * mask).sum(dim=(1, 2), keepdim=True) / count
        squares = (((feats - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True)
        var = squares / (count - 1).clamp_min(1)
        parts.append(((feats - mean) / var.sqrt().clamp_min(1e-5) * mask).unsqueeze(1))
    if not parts:
        frames = log_mel(wav[:1].new_zeros(1, wav.shape[1]), sample_rate, n_mels).shape[-1]
        return wav.new_zeros(0, 1, n_mels, frames)
    return torch.cat(parts).contiguous()


def load_speech(root: str | os.PathLike[str], n_mels: int = 40, seconds: float = 3.5,
                standardize: str = DEFAULT_STANDARDIZE) -> tuple[Dataset, Dataset]:
    """``(train, test)`` log-mel data sets from a :func:`generate_speech` folder: ``x`` is
    ``(N, 1, n_mels, frames)`` float32 (per-utterance standardized), ``y`` the intent index,
    ``groups`` the speaker (so a validation split takes whole speakers).

    Each waveform is zero-padded or cut to ``seconds`` before the features
    (``frames = 1 + seconds * 100``). ``standardize``
    (:data:`~proxcompress.training.config.STANDARDIZE`): ``own-frames`` (the default) takes
    each utterance's mean and standard deviation over the frames of its own audio
    (``1 + length // hop``), the padding frames set to 0 afterwards; ``all-frames`` over all
    its frames, the padding's constant ``log(1e-6)`` included (the speech tables' runs until
    2026-12-06; the harder speech task's chance-level plateau came from it:
    benchmarks/results/speech_plateau_probe.md).
    """
    base = Path(root)
    manifest = speech_manifest(base)
    if not seconds > 0:
        raise InvalidInputError("seconds", f"= {seconds} must be > 0")
    if standardize not in STANDARDIZE:
        raise InvalidInputError("data.standardize", f"= {standardize!r}; accepted: "
                                f"{', '.join(STANDARDIZE)}")
    hop = frame_hop(manifest["sample_rate"])
    samples = int(round(seconds * manifest["sample_rate"]))
    classes = len(manifest["intents"])
    out = []
    for split in ("train", "test"):
        t = _read_split(base, f"{split}.safetensors", manifest["sha256"][f"{split}.safetensors"])
        n = t["labels"].shape[0]
        wav = np.zeros((n, samples), np.float32)
        own = np.zeros(n, np.int64)
        for i in range(n):
            a = t["audio"][t["offsets"][i]: t["offsets"][i + 1]][:samples]
            wav[i, : a.shape[0]] = a.astype(np.float32) / 32768.0
            own[i] = 1 + a.shape[0] // hop
        x = _features(torch.from_numpy(wav), manifest["sample_rate"], n_mels,
                      torch.from_numpy(own) if standardize == "own-frames" else None)
        if n and (t["labels"].min() < 0 or t["labels"].max() >= classes):
            raise InvalidInputError("data.root", f"{split} labels outside 0..{classes - 1}")
        out.append(Dataset(x, torch.from_numpy(t["labels"].astype(np.int64)), classes,
                           f"speech/{split}", torch.from_numpy(t["speakers"].astype(np.int64))))
    return out[0], out[1]


__all__ = [
    "CONFUSABLE_INTENTS",
    "FORMAT",
    "INTENTS",
    "SAMPLE_RATE",
    "VARIANTS",
    "VOICES",
    "Speaker",
    "SpeechOptions",
    "SpeechResNet",
    "espeak_version",
    "feature_shape",
    "frame_hop",
    "generate_speech",
    "intent_count",
    "load_speech",
    "log_mel",
    "mel_filterbank",
    "room_response",
    "speaker_catalogue",
    "synthesize",
]
