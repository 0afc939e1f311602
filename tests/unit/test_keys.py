"""Keystore files and dev accounts; the `fedchain account` commands never show a secret."""

from __future__ import annotations

import json
import stat

import pytest
from eth_account import Account
from typer.testing import CliRunner

from fedchain.chain import keys
from fedchain.cli import app

PASSWORD = "s3cret-for-the-test"


def test_new_list_find_unlock(tmp_path):
    k = keys.new_key(tmp_path, "alice", PASSWORD, light=True)
    assert stat.S_IMODE(k.path.stat().st_mode) == 0o600
    assert json.loads(k.path.read_text())["crypto"]["kdf"] == "scrypt"
    assert keys.list_keys(tmp_path) == [k]
    for ref in ("alice", k.address, k.address.lower(), str(k.path)):
        assert keys.find_key(tmp_path, ref) == k
    assert keys.unlock(k, PASSWORD).address == k.address
    with pytest.raises(keys.KeystoreError, match="wrong password"):
        keys.unlock(k, "nope")
    with pytest.raises(keys.KeystoreError, match="exists"):
        keys.new_key(tmp_path, "alice", PASSWORD, light=True)
    with pytest.raises(keys.KeystoreError, match="no account"):
        keys.find_key(tmp_path, "bob")


def test_import_rejects_bad_keys_and_duplicates(tmp_path):
    acct = Account.create()
    k = keys.import_key(tmp_path, "imported", "0x" + acct.key.hex().removeprefix("0x"), PASSWORD, light=True)
    assert k.address == acct.address
    with pytest.raises(keys.KeystoreError, match="already holds"):
        keys.import_key(tmp_path, "again", acct.key.hex(), PASSWORD, light=True)
    with pytest.raises(keys.KeystoreError, match="not a private key") as err:
        keys.import_key(tmp_path, "bad", "12zz", PASSWORD, light=True)
    assert "12zz" not in str(err.value)
    with pytest.raises(keys.KeystoreError, match="account name"):
        keys.new_key(tmp_path, "../escape", PASSWORD, light=True)


def test_dev_accounts_are_anvils():
    assert keys.dev_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert keys.dev_account(1).address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_account_commands_never_print_keys_or_passwords(tmp_path):
    runner = CliRunner()
    env = {"FEDCHAIN_KEYSTORE": str(tmp_path), "FEDCHAIN_PASSWORD": PASSWORD}
    out_new = runner.invoke(app, ["account", "new", "alice", "--light-kdf"], env=env)
    assert out_new.exit_code == 0, out_new.output
    secret = Account.create()
    key_hex = secret.key.hex().removeprefix("0x")
    (tmp_path / "key.txt").write_text(key_hex)
    out_import = runner.invoke(
        app, ["account", "import", "bob", "--key-file", str(tmp_path / "key.txt"), "--light-kdf"], env=env
    )
    assert out_import.exit_code == 0, out_import.output
    out_list = runner.invoke(app, ["account", "list"], env=env)
    assert secret.address in out_list.output and "alice" in out_list.output
    alice = keys.unlock(keys.find_key(tmp_path, "alice"), PASSWORD)
    for out in (out_new, out_import, out_list):
        for s in (PASSWORD, key_hex, alice.key.hex().removeprefix("0x")):
            assert s.lower() not in out.output.lower()
    # no password and no terminal: a clear error, not a hang
    no_pw = runner.invoke(
        app, ["account", "new", "carol"], env={"FEDCHAIN_KEYSTORE": str(tmp_path), "FEDCHAIN_PASSWORD": ""}
    )
    assert no_pw.exit_code != 0 and "FEDCHAIN_PASSWORD" in no_pw.output
