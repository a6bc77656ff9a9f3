"""`lstmtext pretrain` and `lstmtext train --init-from` on a tiny generated aclImdb archive."""

from __future__ import annotations

import json

import pytest

from lstmtext.cli import main
from lstmtext.predictor import Predictor


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_imdb_archive):
    out = tmp_path_factory.mktemp("lm") / "lm"
    code = main(["pretrain", "--data", str(tiny_imdb_archive), "--out", str(out), "--preset", "tiny", "--epochs", "2",
                 "--valid-every", "10", "--verbose", "0", "--seed", "3"])
    assert code == 0
    return out


def test_pretrain_writes_a_language_model_with_its_report(pretrained, tiny_imdb_archive):
    config = json.loads((pretrained / "config.json").read_text())
    assert config["class_name"] == "LanguageModel"
    run = json.loads((pretrained / "run.json").read_text())
    assert run["data"]["include_test"] is False
    assert run["data"]["documents"] == 20 * 2 + 3  # labelled train reviews + train/unsup, no test review
    assert len(run["metrics"]["val_perplexity"]) == 2 and run["finished"] is True
    assert (pretrained / "report" / "perplexity.png").stat().st_size > 1000
    assert (pretrained.parent / "lm-corpus" / "corpus.json").is_file()


def test_pretrain_uses_test_texts_only_when_asked_and_records_it(tmp_path, tiny_imdb_archive, capsys):
    out = tmp_path / "lm"
    assert main(["pretrain", "--data", str(tiny_imdb_archive), "--out", str(out), "--preset", "tiny",
                 "--include-test", "--max-tokens", "200", "--verbose", "0"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["include_test"] is True and run["data"]["documents"] == 20 * 4 + 3
    # A second run on the same source and options reuses the corpus.
    assert main(["pretrain", "--data", str(tiny_imdb_archive), "--out", str(out), "--preset", "tiny",
                 "--include-test", "--max-tokens", "200", "--verbose", "0", "--overwrite"]) == 0
    assert "(reused:" in capsys.readouterr().out


def test_train_init_from_gives_an_ordinary_checkpoint(pretrained, tiny_imdb_archive, tmp_path, capsys):
    out = tmp_path / "clf"
    assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(out), "--init-from", str(pretrained),
                 "--epochs", "4", "--batch-size", "8", "--maxlen", "400", "--seed", "1", "--verbose", "0",
                 "--decay", "1.5"]) == 0
    text = capsys.readouterr().out
    assert "copied from the language model: embedding, lstm_1, lstm_2" in text
    run = json.loads((out / "run.json").read_text())
    assert run["init_from"] == str(pretrained.resolve()) and 0 <= run["test_metrics"]["accuracy"] <= 1
    assert run["finetune"]["decay"] == 1.5
    predictions = Predictor.from_checkpoint(out).predict(["A wonderful film.", "Dull and far too long."])
    assert [p.label in ("neg", "pos") for p in predictions] == [True, True]
    assert main(["evaluate", str(out)]) == 0


@pytest.mark.parametrize("target", ["missing", "classifier"])
def test_init_from_nothing_or_a_classifier_fails_naming_the_flag(target, tiny_imdb_archive, tmp_path, capsys):
    src = tmp_path / "missing"
    if target == "classifier":
        src = tmp_path / "clf"
        assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(src), "--epochs", "1",
                     "--verbose", "0"]) == 0
        capsys.readouterr()
    assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(tmp_path / "new"), "--init-from",
                 str(src)]) == 1
    err = capsys.readouterr().err
    assert "--init-from" in err and ("no such folder" in err if target == "missing" else "not a language model" in err)


def test_pretrain_bad_corpora_fail_naming_the_file(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["pretrain", "--data", str(empty), "--out", str(tmp_path / "a"), "--preset", "tiny"]) == 1
    assert "empty.txt" in capsys.readouterr().err
    words = tmp_path / "short.txt"
    words.write_text("the cat sat on the mat\n" * 5)
    assert main(["pretrain", "--data", str(words), "--out", str(tmp_path / "b"), "--preset", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "shorter than one BPTT window" in err and "--bptt" in err


def test_init_from_with_a_non_positive_decay_fails_naming_it(pretrained, tiny_imdb_archive, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(tmp_path / "clf"), "--init-from",
                 str(pretrained), "--decay", "0", "--verbose", "0"]) == 1
    assert "decay must be positive" in capsys.readouterr().err
