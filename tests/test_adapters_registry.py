"""The adapter registry: built-ins, entry-point plugins, unknown and postal channels."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from adapters.base import Adapter, Registry, TemplateAdapter
from adapters.errors import AdapterError, PostalMailRefused, UnknownChannel

PLUGIN = '''
from adapters.base import DeliveryReceipt, TemplateAdapter, now


class SmsAdapter(TemplateAdapter):
    channel = "sms"
    medium = "voicemail"

    def __init__(self, *, gateway="loopback", templates=None):
        super().__init__(templates=templates)
        self.gateway = gateway
        self.sent = []

    def deliver(self, message):
        self.sent.append(message)
        return DeliveryReceipt(self.channel, message.message_id, "sent", now(), {})


class PostalAdapter(SmsAdapter):
    channel = "postal"
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution declaring two ``closer.adapters`` entry points."""
    (tmp_path / "closer_demo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "closer_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: closer-demo-plugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[closer.adapters]\nsms = closer_demo_plugin:SmsAdapter\n"
        "postal = closer_demo_plugin:PostalAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "closer_demo_plugin", raising=False)
    return tmp_path


def test_the_built_ins_are_registered_by_name(tmp_path: Path) -> None:
    registry = Registry(discover=False)
    assert registry.names() == ["calendar", "card", "console", "email", "file", "voicemail",
                                "webhook"]
    settings = {
        "email": {"host": "127.0.0.1", "port": 2525},
        "voicemail": {"tasks_dir": str(tmp_path)},
        "card": {"tasks_dir": str(tmp_path)},
        "calendar": {"directory": str(tmp_path)},
        "webhook": {"url": "http://127.0.0.1:9/", "secret": "x"},
        "console": {"directory": str(tmp_path)},
        "file": {"directory": str(tmp_path)},
    }
    for name, options in settings.items():
        adapter = registry.create(name, **options)
        assert isinstance(adapter, Adapter) and isinstance(adapter, TemplateAdapter)


def test_an_unknown_channel_is_a_clear_error() -> None:
    with pytest.raises(UnknownChannel, match="no adapter for channel 'fax'; known channels: "
                       "calendar, card, console, email"):
        Registry(discover=False).create("fax")


@pytest.mark.parametrize("name", ["postal", "mail", "letter", "Postal_Mail", "snail-mail",
                                  "post", "registered letter", "USPS"])
def test_postal_mail_is_refused_whatever_it_is_called(name: str) -> None:
    registry = Registry(discover=False)
    with pytest.raises(PostalMailRefused, match="never uses"):
        registry.create(name)
    with pytest.raises(PostalMailRefused):
        registry.register(name, "adapters.console:ConsoleAdapter")


def test_email_is_not_mistaken_for_postal_mail() -> None:
    registry = Registry(discover=False)
    registry.register("email_digest", "adapters.console:ConsoleAdapter")
    assert "email_digest" in registry.names()
    with pytest.raises(UnknownChannel):
        registry.create("e-mail")


def test_plugins_are_discovered_from_entry_points(plugin: Path) -> None:
    registry = Registry()
    assert "sms" in registry.names()
    adapter = registry.create("sms", gateway="test")
    assert adapter.channel == "sms" and adapter.gateway == "test"


def test_a_postal_plugin_is_refused_and_reported(plugin: Path) -> None:
    registry = Registry()
    assert "postal" not in registry.names()
    assert "never uses" in registry.problems["postal"]
    with pytest.raises(PostalMailRefused):
        registry.create("postal")


def test_a_plugin_that_cannot_load_says_which(tmp_path: Path) -> None:
    registry = Registry(discover=False)
    registry.register("broken", "closer_no_such_module:Adapter")
    with pytest.raises(AdapterError, match="'broken'.*could not be loaded"):
        registry.create("broken")


def test_a_factory_must_return_an_adapter() -> None:
    registry = Registry(discover=False)
    registry.register("nothing", lambda **_: object())
    with pytest.raises(TypeError, match="lacks render/deliver/report"):
        registry.create("nothing")


def test_names_cannot_be_registered_twice_by_accident() -> None:
    registry = Registry(discover=False)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("email", "adapters.console:ConsoleAdapter")
    registry.register("email", "adapters.console:ConsoleAdapter", replace=True)
