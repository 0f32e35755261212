"""Fetch one pinned source distribution from the package index pip uses, hash-checked.

`pip download --no-binary` insists on building the package's metadata, which for vLLM means
installing its whole GPU build toolchain; we only want the tests inside the archive. So this
reads the index page (PEP 503) that pip itself would read and checks the archive's sha256.
Usage: fetch_sdist.py NAME VERSION SHA256 DEST_DIR   (prints the archive's path)
"""
from __future__ import annotations

import hashlib
import html.parser
import os
import sys
import urllib.parse
import urllib.request


def _index_url() -> str:
    configured = os.environ.get("PIP_INDEX_URL")
    if configured:
        return configured
    from pip._internal.models.index import PyPI  # pip's default index, not named here

    return PyPI.simple_url


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self.hrefs += [value for key, value in attrs if key == "href" and value]


def fetch(name: str, version: str, sha256: str, dest: str) -> str:
    filename = f"{name}-{version}.tar.gz"
    path = os.path.join(dest, filename)
    if os.path.exists(path) and _sha256(path) == sha256:
        return path
    page_url = urllib.parse.urljoin(_index_url().rstrip("/") + "/", f"{name}/")
    request = urllib.request.Request(page_url, headers={"Accept": "text/html"})
    links = _Links()
    links.feed(urllib.request.urlopen(request, timeout=120).read().decode())
    matches = [h for h in links.hrefs if urllib.parse.urlsplit(h).path.endswith("/" + filename)]
    if not matches:
        raise SystemExit(f"{filename} is not on {page_url}")
    os.makedirs(dest, exist_ok=True)
    partial = path + ".part"
    with urllib.request.urlopen(urllib.parse.urljoin(page_url, matches[0]), timeout=600) as src, \
            open(partial, "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
    if _sha256(partial) != sha256:
        os.remove(partial)
        raise SystemExit(f"{filename}: sha256 mismatch")
    os.replace(partial, path)
    return path


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


if __name__ == "__main__":
    print(fetch(*sys.argv[1:5]))
