"""Pinned binary downloads against a real HTTP server on 127.0.0.1: a good checksum passes and
the binary runs, a bad one raises, a missing one raises; cached copies are re-verified."""

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from harness.backends.kind import binaries
from harness.backends.kind.binaries import ChecksumError, Pin
from harness.shell import run

FAKE = b"#!/bin/sh\necho 'kind v0.33.0 go1.24 linux/amd64'\n"


class _Server:
    """A loopback HTTP server serving a dict path -> bytes (404 otherwise)."""

    def __init__(self, files):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = files_.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(files):
        s = _Server(files)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


def _pin(url, asset="kind-linux-amd64", member=None, name="kind"):
    return Pin(name, "v0.33.0", f"{url}/{asset}", f"{url}/{asset}.sha256sum", asset, member=member,
               version_argv=("version",), version_re=r"v(?P<major>\d+)\.(?P<minor>\d+)",
               min_version=(0, 32))


def test_good_checksum_downloads_an_executable_that_runs(serve, tmp_path):
    digest = hashlib.sha256(FAKE).hexdigest()
    s = serve({"/kind-linux-amd64": FAKE,
               "/kind-linux-amd64.sha256sum": f"{digest}  kind-linux-amd64\n".encode()})
    path = binaries.download_verified(_pin(s.url), tmp_path)
    assert path == tmp_path / "kind-v0.33.0" / "kind"
    assert path.read_bytes() == FAKE
    out = run([str(path)], timeout=10)
    assert out.returncode == 0 and "v0.33.0" in out.stdout
    assert binaries.path_version(str(path), _pin(s.url)) == (0, 33)


def test_bad_checksum_raises_and_leaves_nothing_runnable(serve, tmp_path):
    s = serve({"/kind-linux-amd64": FAKE,
               "/kind-linux-amd64.sha256sum": (b"0" * 64) + b"  kind-linux-amd64\n"})
    with pytest.raises(ChecksumError) as err:
        binaries.download_verified(_pin(s.url), tmp_path)
    assert "does not match the published" in str(err.value) and s.url in str(err.value)
    assert not (tmp_path / "kind-v0.33.0" / "kind").exists()


def test_missing_checksum_file_raises(serve, tmp_path):
    s = serve({"/kind-linux-amd64": FAKE})
    with pytest.raises(ChecksumError, match="HTTP 404"):
        binaries.download_verified(_pin(s.url), tmp_path)
    assert not (tmp_path / "kind-v0.33.0" / "kind").exists()


def test_checksum_file_without_our_asset_raises(serve, tmp_path):
    digest = hashlib.sha256(FAKE).hexdigest()
    s = serve({"/kind-linux-amd64": FAKE,
               "/kind-linux-amd64.sha256sum": f"{digest}  kind-darwin-arm64\n".encode()})
    with pytest.raises(ChecksumError, match="no SHA-256 for 'kind-linux-amd64'"):
        binaries.download_verified(_pin(s.url), tmp_path)


def test_bare_hash_checksum_file_like_kubectl(serve, tmp_path):
    digest = hashlib.sha256(FAKE).hexdigest()
    s = serve({"/kubectl": FAKE, "/kubectl.sha256": digest.encode()})
    pin = Pin("kubectl", "v1.35.8", f"{s.url}/kubectl", f"{s.url}/kubectl.sha256", "kubectl")
    assert binaries.download_verified(pin, tmp_path).read_bytes() == FAKE


def test_tarball_member_is_extracted_after_verifying_the_archive(serve, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size = len(FAKE)
        tar.addfile(info, io.BytesIO(FAKE))
    tgz = buf.getvalue()
    asset = "helm-v3.19.0-linux-amd64.tar.gz"
    s = serve({f"/{asset}": tgz,
               f"/{asset}.sha256sum": f"{hashlib.sha256(tgz).hexdigest()}  {asset}".encode()})
    path = binaries.download_verified(_pin(s.url, asset, "linux-amd64/helm", "helm"), tmp_path)
    assert path.read_bytes() == FAKE


def test_cached_copy_is_used_and_reverified(serve, tmp_path):
    digest = hashlib.sha256(FAKE).hexdigest()
    files = {"/kind-linux-amd64": FAKE,
             "/kind-linux-amd64.sha256sum": f"{digest}  kind-linux-amd64\n".encode()}
    s = serve(files)
    path = binaries.download_verified(_pin(s.url), tmp_path)
    files.clear()                       # the server now has nothing: the cache must serve
    assert binaries.download_verified(_pin(s.url), tmp_path) == path
    path.write_bytes(FAKE + b"# tampered\n")
    with pytest.raises(ChecksumError, match="no longer matches"):
        binaries.download_verified(_pin(s.url), tmp_path)


def test_fetch_verified_for_pinned_manifests(serve, tmp_path):
    body = b"kind: DaemonSet\n"
    s = serve({"/kube-flannel.yml": body})
    good = hashlib.sha256(body).hexdigest()
    dest = binaries.fetch_verified(f"{s.url}/kube-flannel.yml", good, tmp_path / "m.yml")
    assert dest.read_bytes() == body
    with pytest.raises(ChecksumError, match="does not match the pinned"):
        binaries.fetch_verified(f"{s.url}/kube-flannel.yml", "f" * 64, tmp_path / "n.yml")
    assert not (tmp_path / "n.yml").exists()


def test_resolve_prefers_path_when_version_fits(tmp_path, monkeypatch):
    exe = tmp_path / "kind"
    exe.write_bytes(FAKE)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    pins = {"kind": _pin("http://127.0.0.1:9")}
    assert binaries.resolve("kind", tmp_path / "cache", lambda s: None, pins) == str(exe)


def test_resolve_downloads_when_path_version_is_too_old(serve, tmp_path, monkeypatch):
    old = tmp_path / "bin" / "kind"
    old.parent.mkdir()
    old.write_bytes(b"#!/bin/sh\necho 'kind v0.23.0 go1.22 linux/amd64'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(old.parent))
    digest = hashlib.sha256(FAKE).hexdigest()
    s = serve({"/kind-linux-amd64": FAKE,
               "/kind-linux-amd64.sha256sum": f"{digest}  kind-linux-amd64\n".encode()})
    said = []
    got = binaries.resolve("kind", tmp_path / "cache", said.append, {"kind": _pin(s.url)})
    assert got == str(tmp_path / "cache" / "kind-v0.33.0" / "kind")
    assert "(0, 23)" in said[0] and "pinned v0.33.0" in said[0]


def test_real_pins_name_https_release_urls():
    p = binaries.pins("amd64")
    assert p["kind"].url == "https://kind.sigs.k8s.io/dl/v0.33.0/kind-linux-amd64"
    assert p["kind"].checksum_url.endswith("kind-linux-amd64.sha256sum")
    assert p["kubectl"].url == "https://dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubectl"
    assert binaries.fits((1, 32), p["kubectl"]) is False      # skew > 1 minor from 1.35
    assert binaries.fits((1, 35), p["kubectl"]) is True
    assert binaries.fits((0, 31), p["kind"]) is False          # kind load needs >= v0.32
