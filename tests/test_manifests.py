"""What manifests/ ships, checked by the tools that read it (the proxies: tests/test_proxy.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
#: The unit's program path, replaced by this environment's installed `huddle` for the check.
UNIT_HUDDLE = "/opt/huddle/venv/bin/huddle"


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found: run `make test` (it installs Debian's systemd)"
    unit = (MANIFESTS / "huddle.service").read_text()
    assert f"ExecStart={UNIT_HUDDLE} serve" in unit
    huddle = Path(sys.executable).with_name("huddle")
    assert huddle.exists(), f"{huddle}: huddle is not installed in this environment"
    checked = tmp_path / "huddle.service"
    checked.write_text(unit.replace(UNIT_HUDDLE, str(huddle)))
    result = subprocess.run(
        [analyze, "verify", str(checked)], capture_output=True, text=True, timeout=120
    )
    # Unknown or misspelt settings are only warnings to systemd: any word about the unit fails.
    said = [line for line in (result.stdout + result.stderr).splitlines() if "huddle" in line]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr


def test_the_systemd_unit_runs_huddle_confined_as_its_own_user() -> None:
    unit = (MANIFESTS / "huddle.service").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in unit if "=" in line and line[:1].isalpha())
    assert settings["User"] == "huddle" and settings["Group"] == "huddle"
    assert settings["EnvironmentFile"] == "/etc/huddle/huddle.env"
    assert settings["Environment"] == "HUDDLE_DATA_DIR=/var/lib/huddle"
    assert settings["ReadWritePaths"] == "/var/lib/huddle"
    assert settings["StateDirectory"] == "huddle"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"  # re-reads the certificate
    assert settings["Restart"] == "on-failure"
    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
        assert settings[option] == "yes", option
    assert settings["ProtectSystem"] == "strict"
    assert settings["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert settings["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
