"""Reading bundles from anyone: damaged, encrypted or crafted zips are
refused with "not a valid guidl bundle: ...", and what a bundle may inflate
to is bounded in total."""

import io
import json
import zipfile
from pathlib import Path

import pytest

from bundle_surgery import damaged_bundles, rewritten, with_declared_size
from guidl.engine import bundle as bundle_module
from guidl.engine.export import ExportError, export, load_bundle, load_trained

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "moons.guidl"
    export(load_trained(ROOT / "examples/moons_mlp.guidl.json"), "bundle", path)
    return path


def test_each_kind_of_damaged_bundle_is_refused_clearly(good_bundle, tmp_path):
    for kind, (path, words) in damaged_bundles(good_bundle, tmp_path).items():
        with pytest.raises(ExportError) as caught:
            load_trained(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: not a valid guidl bundle: "), (kind, message)
        assert words in message, (kind, message)


def test_meta_json_of_the_wrong_types_is_refused(good_bundle, tmp_path):
    with zipfile.ZipFile(good_bundle) as archive:
        meta = json.loads(archive.read("meta.json"))
    for key, value, words in (("input_shape", "abc", "input_shape must be a list of 1 to 8 positive integers"),
                              ("input_shape", [2, -1], "input_shape must be"),
                              ("input_dtype", "complex128", "input_dtype must be"),
                              ("class_names", [1, 2], "class_names must be a list of strings"),
                              ("normalization", {"scale": "x"}, "normalization must be"),
                              ("trained", "yes", "trained must be true or false")):
        path = rewritten(good_bundle, tmp_path / f"{key}.guidl", meta={**meta, key: value})
        with pytest.raises(ExportError, match=f"not a valid guidl bundle: meta.json's {words}"):
            load_bundle(path)
    path = rewritten(good_bundle, tmp_path / "list.guidl", meta=[meta])
    with pytest.raises(ExportError, match="meta.json does not describe a guidl bundle"):
        load_bundle(path)


def _zeros_member(good_bundle: Path, target: Path, size: int) -> Path:
    """The bundle with samples that deflate ``size`` zero bytes to a few KiB."""
    return rewritten(good_bundle, target, extra={"samples.safetensors": bytes(size)})


def test_what_a_bundle_may_expand_to_is_limited_in_total(good_bundle, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_TOTAL", 256 * 1024)
    bomb = _zeros_member(good_bundle, tmp_path / "bomb.guidl", 2**20)
    assert bomb.stat().st_size < 16 * 1024
    with pytest.raises(ExportError, match="members would expand to 1.00 MB, more than the 256.00 KB"):
        load_bundle(bomb)
    # Declared small, inflating past it: refused, and never read past the declared size.
    liar = tmp_path / "liar.guidl"
    liar.write_bytes(with_declared_size(bomb.read_bytes(), "samples.safetensors", 100))
    with pytest.raises(ExportError, match="not a valid guidl bundle: .*damaged"):
        load_bundle(liar)


def test_reading_stops_at_the_limit_whatever_the_zip_declares(good_bundle, tmp_path, monkeypatch):
    # A reader that trusts no declared size: the chunks counted are the limit.
    bomb = _zeros_member(good_bundle, tmp_path / "bomb.guidl", 2**20)
    monkeypatch.setattr(bundle_module, "_CHUNK", 4096)
    real_open = zipfile.ZipFile.open
    served = []

    def endless_open(self, name, *args, **kwargs):
        handle = real_open(self, name, *args, **kwargs)
        if getattr(name, "filename", name) != "samples.safetensors":
            return handle
        served.append(0)

        class Endless(io.RawIOBase):
            def read(self, n=-1):
                served[-1] += n
                return bytes(n)

        return Endless()

    monkeypatch.setattr(zipfile.ZipFile, "open", endless_open)
    monkeypatch.setattr(bundle_module, "MAX_BUNDLE_TOTAL", 2**20 + 64 * 1024)
    with pytest.raises(ExportError, match="expands past its declared size or the 1.06 MB"):
        load_bundle(bomb)
    assert served[-1] <= 2**20 + 64 * 1024 + 4096


def test_the_limit_is_the_smaller_of_the_constant_and_the_memory_available(monkeypatch):
    monkeypatch.setattr(bundle_module, "available_memory_bytes", lambda: 2 * 2**30)
    assert bundle_module.expansion_limit() == 2**30  # half: the weights are held twice
    monkeypatch.setattr(bundle_module, "available_memory_bytes", lambda: 200 * 2**30)
    assert bundle_module.expansion_limit() == bundle_module.MAX_BUNDLE_TOTAL == 4 * 2**30


@pytest.mark.parametrize("method, name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")])
def test_bzip2_and_lzma_members_are_refused_before_anything_is_inflated(good_bundle, tmp_path,
                                                                       method, name):
    """Python inflates a whole bzip2 or LZMA block before any size check: such a
    member is refused by its header, whatever it holds."""
    path = tmp_path / f"{name}.guidl"
    with zipfile.ZipFile(good_bundle) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info), compress_type=method)
    with pytest.raises(ExportError, match=f"not a valid guidl bundle: .* uses {name} compression"):
        load_bundle(path)


def test_a_fifo_as_a_bundle_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "model.guidl"
    os.mkfifo(fifo)
    with pytest.raises(ExportError):
        load_trained(fifo)


def test_a_damaged_local_header_is_refused_in_a_short_line(good_bundle, tmp_path):
    """A local header whose name is flagged UTF-8 but is not, and one that
    differs from the directory's: zipfile raises UnicodeDecodeError for the
    first and quotes the header's bytes for the second."""
    data = bytearray(good_bundle.read_bytes())
    name = b"project.guidl.json"
    start = data.index(name)  # the first local header's name
    flags = start - 30 + 6
    bad_utf8 = bytearray(data)
    bad_utf8[flags + 1] |= 0x08  # bit 11: the name is UTF-8
    bad_utf8[start:start + 1] = b"\x9d"
    other_name = bytearray(data)
    other_name[start + 1:start + 2] = b"X"
    for label, content in (("utf8", bad_utf8), ("other", other_name)):
        path = tmp_path / f"{label}.guidl"
        path.write_bytes(bytes(content))
        with pytest.raises(ExportError) as caught:
            load_bundle(path)
        message = str(caught.value)
        assert "not a valid guidl bundle" in message, (label, message)
        assert len(message) < 400, (label, len(message))


def test_a_normalization_that_does_not_fit_the_model_is_refused(good_bundle, tmp_path):
    """Three means for a model of two features crashed predict (RuntimeError) and
    wrote a Python export whose preprocess() failed."""
    with zipfile.ZipFile(good_bundle) as archive:
        meta = json.loads(archive.read("meta.json"))
    three = {"scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    path = rewritten(good_bundle, tmp_path / "three.guidl", meta={**meta, "normalization": three})
    with pytest.raises(ExportError, match="not a valid guidl bundle: normalization has 3 mean values"):
        load_bundle(path)
    for fits in ({"scale": 1.0, "mean": [0.5], "std": [2.0]},
                 {"scale": 1.0, "mean": [0.5, 0.1], "std": [2.0, 1.0]}):
        path = rewritten(good_bundle, tmp_path / "fits.guidl", meta={**meta, "normalization": fits})
        assert load_bundle(path).normalization == fits
    run = tmp_path / "run"
    run.mkdir()
    (run / "project.guidl.json").write_bytes((ROOT / "examples/moons_mlp.guidl.json").read_bytes())
    (run / "run.json").write_text(json.dumps({
        "format": "guidl-run", "version": 1, "status": "finished", "normalization": three}))
    with pytest.raises(ExportError, match=r"run.json: not a valid run record: normalization has 3"):
        load_trained(run)
