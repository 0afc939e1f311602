"""Accounts: encrypted keystore files (Web3 Secret Storage v3) and anvil's dev accounts.

A keystore is one JSON file per account, ``<name>.json`` in the keystore
folder, readable by the owner only; the private key inside is encrypted with a
password (scrypt, geth's standard or "light" cost). Nothing here prints or logs
a key or a password: errors name the file and the address, never the secret.
Dev accounts come from anvil's well-known mnemonic and are for local
development only: anyone can derive their keys.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from fedchain.chain.anvil import DEV_MNEMONIC
from fedchain.errors import FedchainError

SCRYPT_STANDARD = 2**18  # geth's default cost: ~1 s and 256 MiB to unlock
SCRYPT_LIGHT = 2**12  # geth's --lightkdf: for test networks and small machines
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeystoreError(FedchainError):
    """A keystore file is missing, malformed, or the password does not open it."""


@dataclass(frozen=True)
class KeyFile:
    name: str
    address: str
    path: Path


def default_keystore() -> Path:
    """``$FEDCHAIN_KEYSTORE``, else ``~/.fedchain/keystore``."""
    return Path(os.environ.get("FEDCHAIN_KEYSTORE", Path.home() / ".fedchain" / "keystore"))


def dev_account(index: int) -> LocalAccount:
    """Anvil's dev account ``index`` (public keys: never use it on a real chain)."""
    if index < 0:
        raise KeystoreError(f"dev account index must be >= 0, got {index}")
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def list_keys(keystore: Path) -> list[KeyFile]:
    """Every keystore file in the folder, by name."""
    out = []
    for path in sorted(Path(keystore).glob("*.json")):
        try:
            address = json.loads(path.read_text())["address"]
        except (OSError, ValueError, KeyError):
            continue  # not a keystore file
        out.append(KeyFile(path.stem, to_checksum_address("0x" + address.lower().removeprefix("0x")), path))
    return out


def _write(keystore: Path, name: str, key: bytes, password: str, light: bool) -> KeyFile:
    if not NAME.match(name):
        raise KeystoreError(f"account name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    if not password:
        raise KeystoreError("empty password: choose one (or set FEDCHAIN_PASSWORD)")
    keystore = Path(keystore)
    keystore.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = keystore / f"{name}.json"
    acct = Account.from_key(key)
    if any(k.address.lower() == acct.address.lower() for k in list_keys(keystore)):
        raise KeystoreError(f"the keystore already holds account {acct.address}")
    data = Account.encrypt(key, password, iterations=SCRYPT_LIGHT if light else SCRYPT_STANDARD)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} exists: choose another name") from None
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    return KeyFile(name, acct.address, path)


def new_key(keystore: Path, name: str, password: str, light: bool = False) -> KeyFile:
    """Create a fresh random account and store it encrypted."""
    return _write(keystore, name, bytes(Account.create().key), password, light)


def import_key(keystore: Path, name: str, private_key: str, password: str, light: bool = False) -> KeyFile:
    """Store an existing private key (hex, with or without 0x) encrypted."""
    try:
        key = bytes.fromhex(private_key.strip().removeprefix("0x"))
        if len(key) != 32:
            raise ValueError
        Account.from_key(key)
    except Exception:
        raise KeystoreError("not a private key: expected 32 bytes of hex") from None
    return _write(keystore, name, key, password, light)


def find_key(keystore: Path, ref: str) -> KeyFile:
    """A keystore file by name, address, or path."""
    path = Path(ref)
    if path.suffix == ".json" and path.is_file():
        keys = list_keys(path.parent)
        match = [k for k in keys if k.path.resolve() == path.resolve()]
        if match:
            return match[0]
        raise KeystoreError(f"{path} is not a keystore file")
    keys = list_keys(keystore)
    match = [k for k in keys if k.name == ref or k.address.lower() == ref.lower()]
    if not match:
        raise KeystoreError(f"no account {ref!r} in {keystore} (see `fedchain account list`)")
    return match[0]


def unlock(key: KeyFile, password: str) -> LocalAccount:
    """Decrypt a keystore file."""
    try:
        data = json.loads(key.path.read_text())
    except (OSError, ValueError) as e:
        raise KeystoreError(f"cannot read keystore file {key.path}: {e}") from None
    try:
        return Account.from_key(Account.decrypt(data, password))
    except ValueError:
        raise KeystoreError(f"wrong password for {key.name} ({key.address})") from None
