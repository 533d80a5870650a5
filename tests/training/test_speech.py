"""The espeak-ng spoken-command task: determinism, split, features, model, the data command."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from proxcompress.errors import InvalidInputError
from proxcompress.training.data_cli import add_parsers
from proxcompress.training.speech import (
    INTENTS,
    SAMPLE_RATE,
    SpeechOptions,
    SpeechResNet,
    load_speech,
    log_mel,
    mel_filterbank,
    speaker_catalogue,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")
FILES = ("train.safetensors", "test.safetensors", "manifest.json")


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="proxcompress")
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("speech") / "a"
    assert _run_cli("data", "speech", "--out", str(out), "--seed", "7", "--speakers", "3",
                    "--phrasings", "1") == 0
    return out


def test_intents_in_the_spirit_of_fsc() -> None:
    assert len(INTENTS) >= 20
    for label, phrasings in INTENTS.items():
        action, obj, location = label.split("|")
        assert action and obj and location
        assert len(phrasings) >= 3 and len(set(phrasings)) == len(phrasings)
    every = [p for ps in INTENTS.values() for p in ps]
    assert len(every) == len(set(every))  # no phrasing is shared by two intents
    catalogue = speaker_catalogue()
    assert len(catalogue) == len(set(catalogue)) == 96


@needs_espeak
def test_generation_is_byte_identical_for_a_seed(tiny: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "b", tmp_path / "c"
    _run_cli("data", "speech", "--out", str(again), "--seed", "7", "--speakers", "3",
             "--phrasings", "1")
    _run_cli("data", "speech", "--out", str(other), "--seed", "8", "--speakers", "3",
             "--phrasings", "1")
    for name in FILES:
        assert (tiny / name).read_bytes() == (again / name).read_bytes(), name
    assert (tiny / "train.safetensors").read_bytes() != (other / "train.safetensors").read_bytes()


@needs_espeak
def test_split_is_speaker_disjoint_and_complete(tiny: Path) -> None:
    manifest = json.loads((tiny / "manifest.json").read_text())
    assert manifest["intents"] == sorted(INTENTS)
    split = {s["id"]: s["split"] for s in manifest["speakers"]}
    assert split == {0: "train", 1: "train", 2: "test"}
    train = {u["speaker"] for u in manifest["utterances"]["train"]}
    test = {u["speaker"] for u in manifest["utterances"]["test"]}
    assert train == {0, 1} and test == {2} and not train & test
    assert len(manifest["utterances"]["train"]) == 2 * len(INTENTS)
    assert len(manifest["utterances"]["test"]) == len(INTENTS)
    speeds = {u["speed"] for u in manifest["utterances"]["train"]}
    assert len(speeds) > 1  # per-utterance variation
    for u in manifest["utterances"]["train"]:
        assert 10 <= u["snr_db"] <= 30 and 0.5 <= u["gain"] <= 1


@needs_espeak
def test_load_speech_features(tiny: Path, tmp_path: Path) -> None:
    train, test = load_speech(tiny, n_mels=32, seconds=2.0, standardize="all-frames")
    assert train.x.shape == (2 * len(INTENTS), 1, 32, 201)
    assert test.x.shape == (len(INTENTS), 1, 32, 201)
    assert train.classes == len(INTENTS)
    assert sorted(train.y.tolist()) == sorted(list(range(len(INTENTS))) * 2)
    flat = train.x.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(len(flat)), atol=1e-4)
    assert torch.allclose(flat.std(1), torch.ones(len(flat)), atol=1e-3)
    model = SpeechResNet(classes=train.classes, width=4)
    assert model(train.x[:3]).shape == (3, len(INTENTS))
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    raw = bytearray((broken / "test.safetensors").read_bytes())
    raw[-1] ^= 1
    (broken / "test.safetensors").write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="SHA-256"):
        load_speech(broken)


@needs_espeak
def test_own_frames_standardize_the_audio_and_zero_the_padding(tiny: Path) -> None:
    """``data.standardize: own-frames``: over each utterance's own frames (``1 + length //
    hop``) the features have mean 0 and standard deviation 1, every padding frame is exactly
    0; those frames are the same log-mel values, affinely mapped, as under ``all-frames``."""
    from safetensors.numpy import load_file

    seconds = 2.0
    every, _ = load_speech(tiny, n_mels=32, seconds=seconds, standardize="all-frames")
    own, _ = load_speech(tiny, n_mels=32, seconds=seconds, standardize="own-frames")
    raw = load_file(str(tiny / "train.safetensors"))
    lengths = np.minimum(np.diff(raw["offsets"]), int(seconds * SAMPLE_RATE))
    hop = SAMPLE_RATE // 100
    assert own.x.shape == every.x.shape
    padded = 0
    for i, length in enumerate(lengths):
        k = min(1 + int(length) // hop, own.x.shape[-1])
        audio = own.x[i, 0, :, :k].double()
        assert abs(audio.mean().item()) < 1e-4
        assert abs(audio.std().item() - 1) < 1e-3
        assert torch.equal(own.x[i, 0, :, k:], torch.zeros_like(own.x[i, 0, :, k:]))
        padded += own.x.shape[-1] - k
        # an affine map of the same frames: own = a * every + b on the audio's frames
        a = every.x[i, 0, :, :k].double().flatten()
        fit = np.polyfit(a.numpy(), audio.flatten().numpy(), 1)
        assert np.allclose(np.polyval(fit, a.numpy()), audio.flatten().numpy(), atol=1e-3)
    assert padded > 0  # some utterance is shorter than the window: the padding case is tested
    with pytest.raises(InvalidInputError, match="data.standardize.*own-frames"):
        load_speech(tiny, standardize="own")


def test_a_misspelt_standardize_is_refused_by_the_config() -> None:
    from proxcompress.training.config import config_from_dict

    with pytest.raises(InvalidInputError, match="data.standardize"):
        config_from_dict({"data": {"name": "speech", "standardize": "padding"}})
    assert config_from_dict({}).data.standardize == "own-frames"  # the default since 2026-12-06


def test_features_in_batches_equal_the_whole_set_bit_for_bit(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """load_speech computes its features FEATURE_CHUNK utterances at a time (the whole harder
    set at once peaked at 10.7 GB); every utterance is independent, so any batch size gives the
    same bits as the whole set in one call (the formula load_speech used before)."""
    from proxcompress.training import speech

    torch.manual_seed(0)
    wav = torch.randn(11, 4000) * 0.1
    feats = log_mel(wav, 16000, 32)
    mean = feats.mean(dim=(1, 2), keepdim=True)
    std = feats.std(dim=(1, 2), keepdim=True).clamp_min(1e-5)
    whole = ((feats - mean) / std).unsqueeze(1)
    for chunk in (1, 2, 3, 5, 10, 11, 256):  # 1 runs as 2; 5 and 10 leave a last one
        monkeypatch.setattr(speech, "FEATURE_CHUNK", chunk)
        got = speech._features(wav, 16000, 32)
        assert got.shape == whole.shape and torch.equal(got, whole), chunk
    assert speech._features(wav[:0], 16000, 32).shape == (0, 1, 32, whole.shape[-1])


def test_log_mel_of_a_tone_peaks_at_its_filter() -> None:
    bank = mel_filterbank(40, 512, SAMPLE_RATE, 20.0, 8000.0)
    assert bank.shape == (40, 257) and (bank >= 0).all() and (bank.max(1) > 0).all()
    t = torch.arange(SAMPLE_RATE) / SAMPLE_RATE
    for freq in (300.0, 1000.0, 4000.0):
        mel = log_mel(torch.sin(2 * np.pi * freq * t))
        assert mel.shape == (40, 101)
        peak = int(mel.mean(1).argmax())
        bin_index = int(round(freq * 512 / SAMPLE_RATE))
        assert bank[peak, bin_index] > 0  # one of the (at most two) filters covering the tone


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"speakers": 1}, "speakers"),
    ({"speakers": 97}, "speakers"),
    ({"phrasings": 0}, "phrasings"),
    ({"repeats": 0}, "repeats"),
    ({"test_every": 1}, "test_every"),
    ({"seed": -1}, "seed"),
    ({"snr_db": (30.0, 10.0)}, "snr_db"),
    ({"reverb_rt60": (0.0, 0.5)}, "reverb_rt60"),
    ({"reverb_rt60": (0.9, 0.5)}, "reverb_rt60"),
])
def test_bad_options_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        SpeechOptions(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_test_speakers_rule() -> None:
    assert SpeechOptions(speakers=40).test_speakers() == {4, 9, 14, 19, 24, 29, 34, 39}
    assert SpeechOptions(speakers=3).test_speakers() == {2}
    with pytest.raises(InvalidInputError, match="activation"):
        SpeechResNet(activation="gelu")


@needs_espeak
def test_data_speech_through_the_proxcompress_command(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from proxcompress.cli import build_parser, main

    assert "data" in build_parser().format_help()
    out = tmp_path / "speech"
    assert main(["data", "speech", "--out", str(out), "--speakers", "2", "--phrasings", "1",
                 "--test-every", "2"]) == 0
    assert all((out / name).is_file() for name in FILES)
    assert '"intents": 26' in capsys.readouterr().out


@needs_espeak
def test_speech_resnet_trains_through_the_trainer(tiny: Path, tmp_path: Path) -> None:
    """``data.name: speech`` + ``model.name: speech-resnet``: the log-mel inputs reach the
    ResNet, the summary counts its parameters at the speech input shape, a shift run works."""
    from proxcompress.training.config import config_from_dict
    from proxcompress.training.trainer import train

    for weights in ("none", "deepshift"):
        cfg = config_from_dict({
            "epochs": 1, "progress": False, "seed": 1,
            "data": {"name": "speech", "root": str(tiny)},
            "model": {"name": "speech-resnet", "width": 4, "blocks": 1},
            "quant": {"weights": weights},
            "optim": {"batch_size": 16}})
        summary = train(cfg, tmp_path / weights)
        assert summary["data"] == "speech"
        assert summary["parameters"] == sum(
            p.numel() for p in SpeechResNet(width=4).parameters())
        # 3 speakers, one a test speaker; of the two training speakers one is held out
        # (validation by speaker: at least one whole speaker)
        assert summary["train_samples"] == summary["val_samples"] == summary["test_samples"] == 26
        assert 0.0 <= summary["test_accuracy"] <= 100.0
        assert 0.0 <= summary["val_accuracy"] <= 100.0


@pytest.mark.parametrize(("raw", "field"), [
    ({"data": {"name": "speech", "root": "x"}}, "model.name"),
    ({"model": {"name": "speech-resnet"}}, "model.name"),
    ({"data": {"name": "speech"}, "model": {"name": "speech-resnet"}}, "data.root"),
])
def test_speech_config_cross_checks_name_the_field(raw: dict[str, object], field: str) -> None:
    from proxcompress.errors import InvalidInputError
    from proxcompress.training.config import config_from_dict

    with pytest.raises(InvalidInputError) as info:
        config_from_dict(raw)
    assert info.value.field == field


def test_feature_shape_matches_load_speech_frames() -> None:
    from proxcompress.training.speech import feature_shape

    assert feature_shape() == (1, 40, 351)
    wav = torch.zeros(2, int(3.5 * 16000))
    assert tuple(log_mel(wav).shape[1:]) == feature_shape()[1:]


def test_room_response_decays_by_60_db_over_rt60() -> None:
    """Direct path 1, a tail of the direct path's energy whose envelope falls 60 dB in rt60."""
    from proxcompress.training.speech import room_response

    h = room_response(0.5, np.random.default_rng(0), sample_rate=16000)
    assert h.shape == (8000,) and h[0] == 1.0
    assert np.sum(h[1:] ** 2) == pytest.approx(1.0, rel=1e-9)
    first, last = (float(np.sum(h[a:a + 800] ** 2)) for a in (1, 7200))
    # energy envelope exp(-2 * 6.908 t / rt60): 0.45 s apart -> about -56 dB (noisy estimate)
    assert 10 * np.log10(last / first) == pytest.approx(-6.908 * 2 * 0.45 / 0.5 * 10 / np.log(10),
                                                        abs=6.0)


@needs_espeak
def test_harder_variant_adds_confusable_intents_and_reverberation(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]
                                                                  ) -> None:
    """``--confusable --reverb --snr``: the intents of the manifest (and so the class count of
    ``input_spec``) grow, every utterance records its room and noise (a negative SNR through the
    documented ``--snr=LO,HI`` form), bad ranges are refused first."""
    from proxcompress.cli import main
    from proxcompress.training.data import input_spec
    from proxcompress.training.speech import CONFUSABLE_INTENTS

    out = tmp_path / "hard"
    assert main(["data", "speech", "--out", str(out), "--speakers", "2", "--phrasings", "1",
                 "--test-every", "2", "--confusable", "--reverb", "0.3,0.6",
                 "--snr=-5,0"]) == 0
    n = len(INTENTS) + len(CONFUSABLE_INTENTS)
    assert f'"intents": {n}' in capsys.readouterr().out
    assert input_spec("speech", root=str(out))[1] == n
    assert input_spec("speech", root=str(tmp_path / "none"))[1] == len(INTENTS)
    manifest = json.loads((out / "manifest.json").read_text())
    for record in manifest["utterances"]["train"]:
        assert 0.3 <= record["rt60_s"] <= 0.6 and -5.0 <= record["snr_db"] <= 0.0
    for argv in (["--reverb", "0.5"], ["--snr", "a,b"], ["--reverb", "0.9,0.2"]):
        assert main(["data", "speech", "--out", str(tmp_path / "x"), *argv]) == 2
    assert not (tmp_path / "x").exists()
