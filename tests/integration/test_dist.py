# The files in dist/ (what `cmake --install` and the Debian package install): the example config
# is valid and shows every key the loader knows, the man pages render without warnings and
# document every key, the systemd unit passes systemd-analyze, and `cmake --install` installs
# exactly the expected files with a stripped binary. The installed package itself is tested by
# scripts/test-package.
import os
import pathlib
import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import require_binary, run

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
EXAMPLE = DIST / "poplar.toml"
UNIT = DIST / "systemd" / "poplar.service"
MAN_PAGES = [DIST / "man" / "poplar.8", DIST / "man" / "poplar.toml.5"]


def loader_keys():
    """{section: [keys]} from the config loader's schema() table, the one list it accepts."""
    source = (ROOT / "src" / "config" / "config.cpp").read_text(encoding="utf-8")
    table = re.search(r"schema\(\) \{\n(.*?)\n    \};", source, re.S)
    assert table, "schema() not found in src/config/config.cpp"
    keys = {}
    for section, names in re.findall(r'\{"(\w+)",\s*\{([^}]*)\}\}', table.group(1)):
        keys[section] = re.findall(r'"(\w+)"', names)
    assert {"server", "listen", "tls", "storage", "auth", "pop3", "log"} <= keys.keys(), keys
    return keys


def example_with_paths_in(tmp_path):
    """The example config with its absolute paths moved into tmp_path (cert, key, users, mail, state)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    (tmp_path / "users").write_text("")
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in [("/etc/ssl/certs/ssl-cert-snakeoil.pem", cert), ("/etc/ssl/private/ssl-cert-snakeoil.key", key),
                     ("/etc/poplar/users", tmp_path / "users"), ("/var/lib/poplar/mail", tmp_path / "mail"),
                     ('"/var/lib/poplar"', f'"{tmp_path}"')]:
        assert old in text, old
        text = text.replace(old, str(new))
    config = tmp_path / "poplar.toml"
    config.write_text(text)
    return config


def test_example_config_is_valid(tmp_path):
    poplar = require_binary()
    config = example_with_paths_in(tmp_path)
    r = run([poplar, "check", "--config", str(config)])
    assert r.returncode == 0, r.stderr.decode()


def test_example_config_security_defaults():
    cfg = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert cfg["auth"]["plaintext"] == "tls-only"
    assert cfg["auth"]["apop"] is False
    assert cfg["listen"] == {"pop3": ["0.0.0.0:110", "[::]:110"], "pop3s": ["0.0.0.0:995", "[::]:995"]}
    assert cfg["tls"]["certificate"] == "/etc/ssl/certs/ssl-cert-snakeoil.pem"
    assert cfg["storage"]["maildir"] == "/var/lib/poplar/mail/%d/%n"
    assert cfg["auth"]["passwd_file"] == "/etc/poplar/users"


def test_example_config_shows_every_key():
    # Each key appears in its section, set or as a commented "# key = default" line.
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = dict(re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M))
    missing = [f"{s}.{k}" for s, keys in loader_keys().items() for k in keys
               if not re.search(rf"^(# )?{k} += ", sections.get(s, ""), re.M)]
    assert not missing, f"dist/poplar.toml does not show {missing}"


def test_man_page_documents_every_key():
    page = (DIST / "man" / "poplar.toml.5").read_text(encoding="utf-8")
    sections = dict(re.findall(r'^\.SH "\[(\w+)\]"\n(.*?)(?=^\.SH |\Z)', page, re.S | re.M))
    missing = [f"{s}.{k}" for s, keys in loader_keys().items() for k in keys
               if not re.search(rf"^\.BR {k} ", sections.get(s, ""), re.M)]
    assert not missing, f"poplar.toml(5) does not document {missing}"


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    if shutil.which("groff") is None:
        pytest.fail("groff not found (package groff-base, scripts/install-deps)")
    r = run(["groff", "-man", "-ww", "-z", str(page)])
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    r = run(["man", "--warnings", "-l", str(page)], env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_STDERR": "1"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()


def test_man_page_lists_every_subcommand():
    page = (DIST / "man" / "poplar.8").read_text(encoding="utf-8")
    for command in ["serve", "check", "pw", "version", "status", "who", "kick", "stats", "reload"]:
        assert re.search(rf"^\.BI? {command}\b", page, re.M), command


def unit_for_verify(tmp_path):
    """The unit, with ExecStart pointing at the built binary (systemd-analyze checks it exists)."""
    unit = tmp_path / "poplar.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/bin/poplar ", require_binary() + " "))
    return unit


def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = unit_for_verify(tmp_path)
    # --man=no: the man pages are not installed here (scripts/test-package checks them installed).
    r = run(["systemd-analyze", "verify", "--man=no", str(unit)], cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()


def test_unit_exposure_is_the_documented_one(tmp_path):
    # docs/operations.md quotes the score of `systemd-analyze security --offline=yes`; a change to
    # the sandbox must update it.
    unit = unit_for_verify(tmp_path)
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)], cwd=tmp_path)
    score = re.search(rb"Overall exposure level for poplar.service: ([0-9.]+)", r.stdout)
    assert score, r.stdout.decode() + r.stderr.decode()
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    documented = re.search(r"exposure level ([0-9.]+)", doc)
    assert documented, "docs/operations.md does not state the exposure level"
    assert score.group(1).decode() == documented.group(1)


def build_dir():
    path = os.environ.get("POPLAR_BUILD_DIR")
    if not path:
        pytest.fail("POPLAR_BUILD_DIR is not set (tests/integration/CMakeLists.txt sets it)")
    return pathlib.Path(path)


def cmake_install(destdir):
    cmake = os.environ.get("POPLAR_CMAKE", "cmake")
    r = run([cmake, "--install", str(build_dir())], env={**os.environ, "DESTDIR": str(destdir)}, timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    return r.stdout.decode()


def test_cmake_install_installs_exactly_the_expected_files(tmp_path):
    prefix = os.environ["POPLAR_INSTALL_PREFIX"]
    config_dir = os.environ["POPLAR_INSTALL_CONFIG_DIR"]
    unit_dir = os.environ["POPLAR_INSTALL_UNIT_DIR"]
    sysconf = os.path.dirname(config_dir)
    expected = {
        f"{prefix}/bin/poplar",
        f"{prefix}/share/man/man8/poplar.8",
        f"{prefix}/share/man/man5/poplar.toml.5",
        f"{unit_dir}/poplar.service",
        f"{config_dir}/poplar.toml",
        f"{prefix}/share/doc/poplar/examples/poplar.toml",
    }
    if (DIST / "fail2ban" / "filter.d" / "poplar.conf").exists():
        expected.add(f"{sysconf}/fail2ban/filter.d/poplar.conf")
    for jail in (DIST / "fail2ban" / "jail.d").glob("*.local"):
        expected.add(f"{prefix}/share/doc/poplar/examples/fail2ban/{jail.name}")
    for example in (DIST / "postfix").glob("*"):
        expected.add(f"{prefix}/share/doc/poplar/examples/postfix/{example.name}")
    expected.add(f"{prefix}/share/doc/poplar/examples/prometheus/poplar-alerts.yml")
    expected.add(f"{prefix}/share/doc/poplar/examples/haproxy/poplar.cfg")

    destdir = tmp_path / "root"
    cmake_install(destdir)
    installed = {"/" + str(p.relative_to(destdir)) for p in destdir.rglob("*") if not p.is_dir()}
    assert installed == expected

    binary = destdir / prefix.lstrip("/") / "bin" / "poplar"
    kind = run(["file", "-b", str(binary)]).stdout.decode()
    assert ", stripped" in kind, kind
    assert os.access(binary, os.X_OK)

    unit = (destdir / unit_dir.lstrip("/") / "poplar.service").read_text(encoding="utf-8")
    assert f"ExecStart={prefix}/bin/poplar serve --config {config_dir}/poplar.toml\n" in unit
    assert (destdir / config_dir.lstrip("/") / "poplar.toml").read_bytes() == EXAMPLE.read_bytes()


def test_cmake_install_keeps_an_existing_config(tmp_path):
    destdir = tmp_path / "root"
    live = destdir / os.environ["POPLAR_INSTALL_CONFIG_DIR"].lstrip("/") / "poplar.toml"
    live.parent.mkdir(parents=True)
    live.write_text("# the admin's own config\n")
    out = cmake_install(destdir)
    assert live.read_text() == "# the admin's own config\n"
    assert "Keeping the existing" in out
