"""The example vault file of inventory/example: encrypted, opens with the documented password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventory" / "example" / "group_vars" / "all" / "vault.yml.example"
# Documented in docs/hardening.md and in the example inventory: it is an example, not a secret.
EXAMPLE_PASSWORD = "berth-example"


def test_example_vault_is_encrypted_and_opens_with_the_documented_password(
    tmp_path: Path,
) -> None:
    assert EXAMPLE.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    password = tmp_path / "password"
    password.write_text(EXAMPLE_PASSWORD + "\n")
    vault = Path(sys.executable).parent / "ansible-vault"
    result = subprocess.run(
        [str(vault), "view", "--vault-password-file", str(password), str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    secrets = yaml.safe_load(result.stdout)
    assert set(secrets) == {
        "vault_berth_api_keys",
        "vault_alertmanager_slack_webhook_url",
        "vault_grafana_admin_password",
    }
    assert all(name.startswith("vault_") for name in secrets)
