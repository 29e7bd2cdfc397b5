"""The vendored front-end libraries: each has its licence and its row in the vendor README,
ships in the package, and is what `/docs` and `/redoc` point at; those pages name no URL
outside the app and carry a self-only Content-Security-Policy.  (That they render offline
in a browser is tests/test_browser_docs.py.)"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import TestClient

from api import assets
from api.app import create_app
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
VENDOR = assets.STATIC_DIR / "vendor"
LIBRARIES = sorted(p for p in VENDOR.iterdir() if p.is_dir())
ASSET_URLS = [assets.SWAGGER_UI + "/swagger-ui-bundle.js", assets.SWAGGER_UI + "/swagger-ui.css",
              assets.REDOC + "/redoc.standalone.js", assets.HTMX, assets.HTMX_SSE,
              assets.CHART_JS, assets.FAVICON]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/closer.db"))
    with TestClient(app) as http:
        yield http


def test_every_vendored_library_has_its_licence_and_its_row_in_the_readme() -> None:
    readme = (VENDOR / "README.md").read_text()
    for folder in LIBRARIES:
        package, version = folder.name.rsplit("-", 1)
        assert [p for p in folder.iterdir() if p.name.startswith("LICENSE")], folder.name
        row = [line for line in readme.splitlines() if f"(`{package}`) | {version} |" in line]
        assert row, f"{folder.name} has no row in api/static/vendor/README.md"


def test_every_url_the_code_names_is_a_vendored_file() -> None:
    for url in ASSET_URLS:
        assert url.startswith(assets.VENDOR_URL + "/")
        assert (VENDOR / url.removeprefix(assets.VENDOR_URL + "/")).is_file(), url
    named = {url.removeprefix(assets.VENDOR_URL + "/").split("/")[0] for url in ASSET_URLS}
    assert named == {folder.name for folder in LIBRARIES}


def test_the_package_data_declaration_ships_every_static_file() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["api"]
    api_dir = ROOT / "api"
    shipped = {path for pattern in declared for path in api_dir.glob(pattern) if path.is_file()}
    on_disk = {path for path in assets.STATIC_DIR.rglob("*") if path.is_file()}
    assert on_disk and on_disk <= shipped
    # And every other file the package reads at run time (the dashboard's templates):
    # a file only an editable install finds answers 500 after `pip install .`.
    data = {path for path in api_dir.rglob("*") if path.is_file()
            and path.suffix not in {".py", ".pyc", ".so"} and "__pycache__" not in path.parts}
    assert any(path.suffix == ".html" for path in data) and sorted(data - shipped) == []


@pytest.mark.parametrize("url", ASSET_URLS)
def test_each_asset_is_served_unauthenticated_with_its_type(client: TestClient,
                                                            url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}[Path(url).suffix]
    assert expected in response.headers["content-type"]
    assert response.content == (VENDOR / url.removeprefix(assets.VENDOR_URL + "/")).read_bytes()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_name_no_url_outside_the_app(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "googleapis" not in html and "cdn." not in html
    for link in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert link.startswith(assets.STATIC_URL + "/"), link
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:;" in policy


def test_swagger_ui_sends_nothing_to_the_online_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text

