"""Files the Space serves and stores: identical results downloaded at once arrive whole, uploads and results are
deleted once no page can ask for them, and an upload over the limit is refused while it arrives."""

import http.client
import os
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from conftest import EXAMPLE_IMAGES
from gradio import processing_utils
from gradio_client import Client, handle_file

from demos import images, uploads, videos
from demos.errors import UserError
from demos.tabs import widgets


def test_gradio_rewrites_an_output_picture_in_place_and_the_app_does_not(tmp_path, monkeypatch):
    """gradio 6.31 saves an output picture to a file named by its bytes' hash and writes it again, in place, on every
    call (`processing_utils.save_pil_to_cache`): a download of that file running meanwhile reads a truncated file."""
    picture = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    path = processing_utils.save_pil_to_cache(PIL.Image.fromarray(picture), str(tmp_path), format="png")
    writes = []
    real_write = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: (writes.append((str(self), self.exists())),
                                                                  real_write(self, data))[1])
    assert processing_utils.save_pil_to_cache(PIL.Image.fromarray(picture), str(tmp_path), format="png") == path
    assert writes == [(path, True)], "the upstream defect is gone: OutputImage may go back to plain gr.Image"
    first = widgets.save_png(picture, str(tmp_path))
    inode = os.stat(first).st_ino
    widgets._SAVED_PNGS.clear()  # encoded again, the same bytes find their file
    saved = widgets.save_png(picture, str(tmp_path))
    assert saved == first and os.stat(saved).st_ino == inode  # the same bytes: the file is left as it is
    fresh = tmp_path / "fresh"
    saved = widgets.save_png(picture, str(fresh))  # a new picture: written under a temporary name, then renamed
    assert np.array_equal(np.asarray(PIL.Image.open(saved)), picture) and [p.name for p in Path(saved).parent.iterdir()] == [
        "image.png"]


def test_a_picture_shown_again_is_not_encoded_again(tmp_path, monkeypatch):
    picture = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    first = widgets.save_png(picture, str(tmp_path))
    encoded = []
    monkeypatch.setattr(processing_utils, "hash_bytes", lambda data: encoded.append(data) or "x")
    assert widgets.save_png(picture.copy(), str(tmp_path)) == first and encoded == []
    os.remove(first)  # gradio's `delete_cache` took it: written again
    assert np.array_equal(np.asarray(PIL.Image.open(widgets.save_png(picture, str(tmp_path)))), picture)
    assert len(encoded) == 1


@pytest.mark.slow  # many requests at once
def test_identical_results_requested_at_once_all_arrive_whole(running_app):
    """A class following the call to action: the same request from many pages at the same moment."""
    args = (handle_file(str(EXAMPLE_IMAGES[2])), 0.75, 7, "vit-mae-base")
    expected = [np.asarray(PIL.Image.open(path)) for path in
                Client(running_app.local_url, verbose=False).predict(*args, api_name="/mae_reconstruct")[:5]]
    failures, downloads = [], []

    def learner(client):
        for _ in range(3):
            try:
                outputs = client.predict(*args, api_name="/mae_reconstruct")
                downloads.append([np.asarray(PIL.Image.open(path)) for path in outputs[:5]])
            except Exception as error:  # noqa: BLE001 - a cut download is what this test counts
                failures.append(error)

    # The pages open one after another, as a class's load (ten config fetches at once can outlast gradio_client's 5 s
    # on a loaded 2-core machine, ending a learner before its first request); then the requests come at once.
    clients = [Client(running_app.local_url, verbose=False) for _ in range(10)]
    threads = [threading.Thread(target=learner, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(downloads) == 30
    assert all(np.array_equal(got, want) for pictures in downloads for got, want in zip(pictures, expected, strict=True))


@pytest.mark.slow  # waits for the sweep
def test_uploads_and_results_are_deleted_once_older_than_their_age(tiny_hub, monkeypatch, tmp_path):
    import app

    upload = tmp_path / "a-learners-photo.png"
    PIL.Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(upload)
    monkeypatch.setattr(uploads, "FILES_KEPT_S", 1)
    monkeypatch.setattr(uploads, "FILES_SWEEP_S", 1)
    demo = app.build_app()
    demo.launch(prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        client = Client(demo.local_url, verbose=False)
        outputs = client.predict(handle_file(str(upload)), 0.6, 5, "vit-mae-base", api_name="/mae_reconstruct")
        # What the call wrote (the upload and the five pictures), not the pages' own examples (kept for good).
        kept = set().union(*(getattr(block, "keep_in_cache", set()) for block in demo.blocks.values()))
        stored = [path for files in demo.temp_file_sets for path in files if path not in kept]
        assert {upload.name, *(Path(path).name for path in outputs[:5])} <= {Path(path).name for path in stored}
        deadline = time.monotonic() + 30
        while any(os.path.exists(path) for path in stored) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(os.path.exists(path) for path in stored)
    finally:
        demo.close()


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            pass
    return total


@pytest.mark.slow  # sends an upload over the limit
def test_an_upload_over_the_limit_is_refused_while_it_arrives_and_never_stored(running_app):
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    before = _folder_bytes(folder)
    peak, uploading = [0], threading.Event()
    uploading.set()

    def watch():
        while uploading.is_set():
            peak[0] = max(peak[0], _folder_bytes(folder) - before)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    url = urllib.parse.urlparse(running_app.local_url)
    boundary = "pdr-upload-limit"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size, chunk = uploads.MAX_UPLOAD_BYTES + 100 * 2**20, b"\0" * 2**20
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    connection.putrequest("POST", "/gradio_api/upload")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    try:
        connection.send(head)
        for _ in range(size // len(chunk)):
            connection.send(chunk)
        connection.send(tail)
        status = connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed the connection before the rest was sent
    finally:
        connection.close()
        uploading.clear()
        watcher.join()
    assert status == 413
    assert peak[0] <= uploads.MAX_UPLOAD_BYTES + 16 * 2**20  # never more than the limit on disk
    assert _folder_bytes(folder) - before < 2**20  # and nothing of it left


@pytest.mark.parametrize("what, check", [("image", images.load_image), ("video", videos.probe_video)])
def test_an_upload_that_expired_says_so(tmp_path, what, check):
    with pytest.raises(UserError, match=f"{what} file is no longer on the server .* 60 minutes"):
        check(str(tmp_path / "gone.png"))
