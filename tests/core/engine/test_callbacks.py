"""RunFolder: an exclusive folder, atomic checkpoints, a heartbeat; TensorBoard after the claim."""

import errno
import json
import os
import time

import pytest
import torch

from guidl.engine import callbacks
from guidl.engine.callbacks import RunFolder
from guidl.engine.runs import RunExistsError, RunWriteError, read_run
from guidl.engine.trainer import Trainer
from helpers import small_project


def test_a_new_run_never_writes_into_a_folder_that_holds_a_run(digits_data, tmp_path):
    project = small_project(training__epochs=1)
    Trainer(project, data=digits_data, callbacks=[RunFolder(tmp_path / "run")]).fit()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(RunExistsError, match="exists and is not empty"):
        Trainer(project, data=digits_data, callbacks=[RunFolder(tmp_path / "run")]).fit()
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    record = read_run(tmp_path / "run")
    assert record["status"] == "finished" and record["pid"] == os.getpid()


def test_a_checkpoint_write_that_dies_keeps_the_last_complete_checkpoint(digits_data, tmp_path, monkeypatch):
    project = small_project(training__epochs=2)
    real_save = torch.save

    class Killed(BaseException):
        pass

    def dies_in_epoch_two(obj, handle):
        if obj["epoch"] == 2:
            handle.write(b"half a checkpoint")
            raise Killed
        real_save(obj, handle)

    monkeypatch.setattr(torch, "save", dies_in_epoch_two)
    with pytest.raises(Killed):
        Trainer(project, data=digits_data, callbacks=[RunFolder(tmp_path)]).fit()
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_full_disk_while_writing_the_checkpoint_ends_the_run_with_a_clear_error(digits_data, tmp_path,
                                                                                   monkeypatch):
    def full(obj, handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(RunWriteError, match=f"cannot write the run folder {tmp_path}: No space left"):
        Trainer(small_project(training__epochs=1), data=digits_data, callbacks=[RunFolder(tmp_path)]).fit()
    record = read_run(tmp_path)
    assert record["status"] == "failed" and record["error"].endswith("No space left on device")


def test_the_window_explains_a_run_folder_it_cannot_write_without_a_traceback(tmp_path, capsys):
    from guidl.engine.training_process import failure_message

    error = RunWriteError(tmp_path, OSError(errno.EROFS, "Read-only file system"))
    assert failure_message(error) == f"cannot write the run folder {tmp_path}: Read-only file system"
    assert "Traceback" not in capsys.readouterr().err


def test_a_running_training_refreshes_its_heartbeat(digits_data, tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "HEARTBEAT_S", 0.0)
    seen = []

    class Watch(callbacks.Callback):
        def on_epoch_start(self, trainer, epoch_index):
            os.utime(tmp_path / "run.json", (1, 1))  # as if written long ago

        def on_train_batch_end(self, trainer, batch, loss):
            seen.append(os.stat(tmp_path / "run.json").st_mtime)

    Trainer(small_project(training__epochs=1), data=digits_data,
            callbacks=[RunFolder(tmp_path), Watch()]).fit()
    assert seen and min(seen) > time.time() - 600
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "finished"


def test_tensorboard_starts_writing_after_the_run_folder_is_claimed(digits_data, tmp_path):
    pytest.importorskip("tensorboard")
    logger = callbacks.TensorBoardLogger(tmp_path / "run" / "tensorboard")
    assert not (tmp_path / "run").exists()
    Trainer(small_project(training__epochs=1), data=digits_data,
            callbacks=[RunFolder(tmp_path / "run"), logger]).fit()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_the_run_records_the_project_file_it_was_trained_from(digits_data, tmp_path):
    from guidl.engine.runs import latest_trained_run

    source = tmp_path / "boring.guidl.json"
    Trainer(small_project(training__epochs=1), data=digits_data,
            callbacks=[RunFolder(tmp_path / "runs" / "a", source=source)]).fit()
    assert read_run(tmp_path / "runs" / "a")["source"] == str(source)
    assert latest_trained_run(tmp_path / "runs", "boring", source=source) == tmp_path / "runs" / "a"


def test_a_disk_that_fills_inside_torch_save_is_named_not_a_zip_writer_error(digits_data, tmp_path,
                                                                              monkeypatch):
    """torch.save reports a full disk as 'RuntimeError: ... unexpected pos', the OSError only
    in its chain: a file that takes 100 bytes and then no more, as a full disk does."""

    class FillsUp:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            if self.written + len(data) > 100:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def open_full(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        return FillsUp(handle) if str(path).endswith(".tmp.pt") else handle

    monkeypatch.setattr(callbacks, "open", open_full, raising=False)
    with pytest.raises(RunWriteError, match="No space left on device") as caught:
        Trainer(small_project(training__epochs=1), data=digits_data, callbacks=[RunFolder(tmp_path)]).fit()
    assert isinstance(caught.value.__cause__, RuntimeError)  # what torch.save raised
    assert read_run(tmp_path)["status"] == "failed"
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
