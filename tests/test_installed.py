"""The suite tests the package as installed: from the wheel, with every data file in it.

`nox -s tests` sets NEXUS_EXPECT_INSTALLED=1 after installing the built wheel; then the package
must come from site-packages, never from the source tree (a file missing from the wheel would
otherwise go unnoticed). The data files are checked however the package was installed.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

import nexus_connector_async

SOURCE = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.skipif(
    not os.environ.get("NEXUS_EXPECT_INSTALLED"), reason="only under nox (installed wheel)"
)
def test_the_package_under_test_is_the_installed_wheel_not_the_source_tree() -> None:
    location = Path(nexus_connector_async.__file__).resolve()
    assert SOURCE not in location.parents, location
    assert "site-packages" in location.parts


def test_the_package_ships_its_type_marker_and_every_lua_script() -> None:
    package = resources.files("nexus_connector_async")
    assert package.joinpath("py.typed").is_file()
    lua = package.joinpath("backends", "redis", "lua")
    shipped = {p.name for p in lua.iterdir() if p.name.endswith(".lua")}
    in_source = {
        p.name for p in (SOURCE / "nexus_connector_async/backends/redis/lua").glob("*.lua")
    }
    assert shipped >= in_source
    assert "admit.lua" in shipped
