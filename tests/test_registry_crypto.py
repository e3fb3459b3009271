"""Artifacts encrypted at rest: the keyring file, the chunked AES-GCM format, and the registry around them.

Real files, real keys, real crypto; tampering is done to the bytes on disk.
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.db.tables import CustomizationJobRow
from tuneforge.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tuneforge.models.specs import custom_spec, foundation_spec
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.security import keyring
from tuneforge.security.crypto import MANIFEST, SUFFIX, TAG_BYTES, decrypt_dir, encrypt_dir
from tuneforge.security.keyring import Key, create_key, get_key, list_keys, normalize_key_id
from tuneforge.settings import load_settings

CHUNK = 64 * 1024  # small chunks, so a few MB make ~50 of them


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def secret_forms(key: Key) -> list[str]:
    """Every way key bytes could show up in text."""
    m = key.material
    return [base64.b64encode(m).decode(), m.hex(), repr(m), str(list(m))[1:40]]


@pytest.fixture
def plain(tmp_path) -> Path:
    """An artifact directory: a multi-chunk file with an odd size, one of exactly 3 chunks, an empty one, a nested one."""
    src = tmp_path / "plain"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    (src / "weights.bin").write_bytes(rng.bytes(3 * 1024 * 1024 + 123))
    (src / "exact.bin").write_bytes(rng.bytes(3 * CHUNK))
    (src / "empty.txt").write_bytes(b"")
    (src / "sub" / "tokenizer.json").write_text(json.dumps({"vocab": {"hello": 1}}))
    return src


@pytest.fixture
def key(tmp_path) -> Key:
    return get_key(tmp_path / "home", create_key(tmp_path / "home", "alias/test"))


def encrypted(plain: Path, key: Key, tmp_path: Path) -> Path:
    dst = tmp_path / "enc"
    encrypt_dir(plain, dst, key, context="model-a", chunk_size=CHUNK)
    return dst


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def same_tree(a: Path, b: Path) -> bool:
    return files(a) == files(b)


# ---- format ---------------------------------------------------------------------------------------
def test_round_trip_streams_many_chunks_into_a_private_directory(plain, key, tmp_path):
    enc = encrypted(plain, key, tmp_path)
    names = sorted(p.relative_to(enc).as_posix() for p in enc.rglob("*") if p.is_file())
    assert names == sorted([MANIFEST, "empty.txt.enc", "exact.bin.enc", "sub/tokenizer.json.enc", "weights.bin.enc"])
    ciphertext = (enc / "weights.bin.enc").read_bytes()
    size = 3 * 1024 * 1024 + 123
    assert len(ciphertext) == _header_size(enc / "weights.bin.enc") + size + (size // CHUNK + 1) * TAG_BYTES  # a tag per chunk
    assert (plain / "weights.bin").read_bytes()[:4096] not in ciphertext
    assert b"alias/test" in ciphertext[:200] and key.material not in ciphertext  # the id is in the header, never the key
    assert b"hello" not in (enc / "sub" / "tokenizer.json.enc").read_bytes()

    out = decrypt_dir(enc, tmp_path / "run", key, context="model-a")
    assert out.parent == tmp_path / "run" and same_tree(out, plain)
    assert mode(out) == 0o700 and mode(out / "sub") == 0o700
    assert {mode(p) for p in out.rglob("*") if p.is_file()} == {0o600}


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _header_size(path: Path) -> int:
    data = path.read_bytes()
    return 75 + int.from_bytes(data[73:75], "big")  # the fixed part (magic .. key id length), then the key id


def _tamper(enc: Path, how: str, other: Path) -> None:
    w = enc / "weights.bin.enc"
    data = w.read_bytes()
    h, block = _header_size(w), CHUNK + TAG_BYTES
    if how == "flip a ciphertext byte":
        _flip(w, h + 5 * block + 77)
    elif how == "flip a tag byte":
        _flip(w, h + block - 1)
    elif how == "flip the chunk size":
        _flip(w, 7)
    elif how == "truncate mid-chunk":
        w.write_bytes(data[:-100])
    elif how == "drop the last chunk":
        w.write_bytes(data[: h + ((len(data) - h) // block) * block])
    elif how == "drop every chunk":
        w.write_bytes(data[:h])
    elif how == "append a chunk":
        w.write_bytes(data + data[h: h + block])
    elif how == "swap two chunks":
        c1, c2 = data[h + block: h + 2 * block], data[h + 2 * block: h + 3 * block]
        w.write_bytes(data[: h + block] + c2 + c1 + data[h + 3 * block:])
    elif how == "swap two files":
        a, b = enc / "exact.bin.enc", enc / "empty.txt.enc"
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    elif how == "remove a file":
        (enc / "sub" / "tokenizer.json.enc").unlink()
    elif how == "file from another model":
        shutil.copy(other / "weights.bin.enc", w)
    elif how == "manifest from another model":
        shutil.copy(other / MANIFEST, enc / MANIFEST)
    elif how == "not an encrypted file":
        w.write_bytes(b"{\"__metadata__\": {}}")


TAMPERING = ["flip a ciphertext byte", "flip a tag byte", "flip the chunk size", "truncate mid-chunk", "drop the last chunk",
             "drop every chunk", "append a chunk", "swap two chunks", "swap two files", "remove a file",
             "file from another model", "manifest from another model", "not an encrypted file"]


@pytest.mark.parametrize("how", TAMPERING)
def test_tampering_is_detected_and_leaves_no_plaintext(plain, key, tmp_path, how):
    enc = encrypted(plain, key, tmp_path)
    other = tmp_path / "other"
    encrypt_dir(plain, other, key, context="model-b", chunk_size=CHUNK)  # same files and key, another model
    _tamper(enc, how, other)
    run = tmp_path / "run"
    with pytest.raises(InvalidInput) as err:
        decrypt_dir(enc, run, key, context="model-a")
    assert list(run.iterdir()) == []  # the partial copy was removed
    assert not any(s in err.value.message for s in secret_forms(key))


def test_wrong_key_is_access_denied(plain, key, tmp_path):
    enc = encrypted(plain, key, tmp_path)
    home = tmp_path / "home"
    other = get_key(home, create_key(home, "other"))
    with pytest.raises(AccessDenied, match="encrypted under key 'alias/test', not 'other'"):
        decrypt_dir(enc, tmp_path / "run", other, context="model-a")
    recreated = Key("alias/test", other.material)  # the same id with new bytes: the keyring was re-created
    with pytest.raises(AccessDenied, match="not the key it was encrypted with") as err:
        decrypt_dir(enc, tmp_path / "run", recreated, context="model-a")
    assert not any(s in err.value.message for s in secret_forms(key) + secret_forms(other))
    assert list((tmp_path / "run").iterdir()) == []


# ---- keyring --------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, normalized", [
    ("1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890ab"),
    ("alias/prod/models", "alias/prod/models"),
    ("arn:aws:kms:eu-west-1:111122223333:alias/prod/models", "alias/prod/models"),
])
def test_key_id_forms_name_one_entry(tmp_path, given, normalized):
    assert normalize_key_id(given) == normalized
    assert create_key(tmp_path, given) == normalized
    assert get_key(tmp_path, normalized) == get_key(tmp_path, given)
    assert list_keys(tmp_path) == [normalized]
    with pytest.raises(Conflict):
        create_key(tmp_path, normalized)


@pytest.mark.parametrize("bad", ["", "has space", "arn:aws:kms:us-east-1:111122223333:secret/x", "key/x", "alias/", "x" * 300])
def test_bad_key_ids_are_invalid_input(tmp_path, bad):
    with pytest.raises(InvalidInput) as err:
        create_key(tmp_path, bad)
    assert err.value.field == "customModelKmsKeyId"


def test_keyring_file_is_private_and_rewritten_atomically(tmp_path):
    first = create_key(tmp_path)
    path = tmp_path / "keyring.json"
    assert mode(path) == 0o600 and len(first) == 36  # a UUID, like KMS key ids
    before = path.open()  # holds the first version's inode, so it cannot be reused by a later file

    def add(n: int) -> None:
        for i in range(5):
            create_key(tmp_path, f"t{n}-{i}")

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list_keys(tmp_path)) == 31  # no create lost another's key
    assert list(json.load(before)["keys"]) == [first]  # the old file is untouched: replaced by rename, not rewritten
    before.close()
    assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring.json", "keyring.json.lock"]  # no temporary files left
    document = json.loads(path.read_text())
    assert document["version"] == 1 and len(base64.b64decode(document["keys"][first]["key"])) == 32


def test_missing_exposed_or_broken_keyring_errors_never_show_key_bytes(tmp_path):
    home = tmp_path / "home"
    with pytest.raises(NotFound) as err:
        get_key(home, "arn:aws:kms:us-east-1:111122223333:alias/missing")
    assert "python -m tuneforge.security.keyring create alias/missing" in err.value.message  # names the id and the fix
    key = get_key(home, create_key(home, "k"))
    messages = [repr(key), str(key), f"{key}", f"{key!r}", repr([key])]

    path = home / "keyring.json"
    path.chmod(0o644)
    with pytest.raises(AccessDenied, match="chmod 600") as err:
        get_key(home, "k")
    messages.append(err.value.message)
    path.chmod(0o600)

    document = json.loads(path.read_text())
    document["keys"]["short"] = {"key": base64.b64encode(key.material[:31]).decode()}
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput) as err:
        get_key(home, "short")
    messages.append(err.value.message)
    path.write_text(path.read_text()[:-3])  # cut JSON
    with pytest.raises(InvalidInput) as err:
        list_keys(home)
    messages.append(err.value.message)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no decode error carrying the file's text
    assert "key 'k'" in str(key) and "material" not in repr(key)
    for message in messages:
        assert not any(s in message for s in secret_forms(key)), message


def test_keyring_command_prints_ids_only(home, capsys):
    assert keyring.main(["create", "alias/cli"]) == 0
    assert keyring.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.split() == ["alias/cli", "alias/cli"]
    assert base64.b64encode(get_key(home, "alias/cli").material).decode() not in out


# ---- the registry ---------------------------------------------------------------------------------
@pytest.fixture
def registry_env(home, tiny_model_dir):
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    return settings, CustomModelRegistry(settings, sessions), catalog


def adapter_dir(tmp_path: Path) -> Path:
    """What the trainer writes for LoRA: a real safetensors file (whose header starts {"__metadata__") and JSON."""
    out = tmp_path / "artifact"
    out.mkdir()
    rng = np.random.default_rng(1)
    save_file({"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.standard_normal((8, 64), dtype=np.float32)},
              str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    (out / "tuneforge-artifact.json").write_text(json.dumps({"method": "lora"}))
    return out


def job_row(job_id: str, kms_key_id: str | None) -> CustomizationJobRow:
    return CustomizationJobRow(
        job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/{job_id}",
        job_name=f"job-{job_id}", custom_model_name=f"model-{job_id}", role_arn="arn:aws:iam::000000000000:role/t",
        base_model_id="tiny", base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny",
        customization_type="FINE_TUNING", hyperparameters={}, training_data_uri="/data.jsonl", validation_data_uris=[],
        output_uri="/out", kms_key_id=kms_key_id,
    )


def test_register_encrypts_worker_spec_decrypts_delete_removes_everything(registry_env, tmp_path):
    settings, registry, catalog = registry_env
    create_key(settings.home, "alias/models")
    artifact = adapter_dir(tmp_path)
    row = registry.register(job_row("enc000000001", "arn:aws:kms:us-east-1:000000000000:alias/models"),
                            artifact_dir=artifact, artifact_kind="adapter", training_loss=1.0, validation_loss=None)
    stored = Path(row.artifact_dir)
    assert stored == settings.home / "custom-models" / "enc000000001"
    assert all(p.name.endswith(SUFFIX) for p in stored.rglob("*") if p.is_file())
    for p in stored.rglob("*"):
        assert b'{"__metadata__"' not in p.read_bytes() and b"peft_type" not in p.read_bytes()

    spec = custom_spec(catalog, registry, row)
    copy = Path(spec.adapter)
    assert copy.parent == settings.home / "run" / row.model_id and mode(copy) == 0o700
    assert spec.checkpoint == foundation_spec(catalog, catalog.get("tiny")).checkpoint
    assert same_tree(copy, artifact)
    assert (copy / "adapter_model.safetensors").read_bytes()[8:].startswith(b'{"__metadata__"')
    registry.release(spec)
    assert not copy.exists() and Path(spec.checkpoint).is_dir()  # the base checkpoint is never touched

    left = Path(custom_spec(catalog, registry, row).adapter)  # a caller that never released its copy
    registry.delete(row.model_arn)
    assert not stored.exists() and not left.exists() and not (settings.home / "run" / row.model_id).exists()
    with pytest.raises(NotFound):
        registry.get(row.model_arn)


def test_full_model_and_plain_model_specs(registry_env, tmp_path):
    settings, registry, catalog = registry_env
    create_key(settings.home, "k1")
    artifact = adapter_dir(tmp_path)
    full = registry.register(job_row("enc000000002", "k1"), artifact_dir=artifact, artifact_kind="full",
                             training_loss=None, validation_loss=None)
    spec = custom_spec(catalog, registry, full)
    assert spec.adapter is None and same_tree(Path(spec.checkpoint), artifact)
    registry.release(spec)
    assert not Path(spec.checkpoint).exists()

    plain = registry.register(job_row("pln000000001", None), artifact_dir=artifact, artifact_kind="adapter",
                              training_loss=None, validation_loss=None)
    spec = custom_spec(catalog, registry, plain)
    assert spec.adapter == plain.artifact_dir and same_tree(Path(plain.artifact_dir), artifact)
    registry.release(spec)  # nothing to remove: the stored artifact stays
    assert Path(plain.artifact_dir).is_dir()


def test_register_with_an_unknown_key_writes_nothing(registry_env, tmp_path):
    settings, registry, _ = registry_env
    with pytest.raises(NotFound, match="no key 'nope'"):
        registry.register(job_row("enc000000003", "nope"), artifact_dir=adapter_dir(tmp_path), artifact_kind="adapter",
                          training_loss=None, validation_loss=None)
    assert not (settings.home / "custom-models").exists() or not any((settings.home / "custom-models").iterdir())
    with pytest.raises(NotFound):
        registry.get("enc000000003")

