# The default TLS settings against testssl.sh (Debian's), on the implicit-TLS port and with
# --starttls pop3, with an RSA certificate (the kind that could offer static-RSA key exchange):
# no vulnerability, no protocol below TLS 1.2, no cipher without forward secrecy or AEAD.
import json
import os
import shutil
import subprocess

import pytest

SEVERE = {"LOW", "MEDIUM", "HIGH", "CRITICAL"}


def rsa_certificate(root):
    cert, key = os.path.join(root, "rsa-cert.pem"), os.path.join(root, "rsa-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def run_testssl(root, target, *extra):
    out = os.path.join(root, f"testssl-{len(os.listdir(root))}.json")
    # Protocols, cipher categories, forward secrecy, vulnerabilities: bounded, about 30 s each.
    r = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--openssl-timeout", "5",
                        "-p", "-s", "-f", "-U", *extra, "--jsonfile", out, target],
                       capture_output=True, text=True, timeout=300)
    assert os.path.exists(out), r.stdout + r.stderr
    with open(out) as f:
        return {x["id"]: x for x in json.load(f)}, r.stdout


@pytest.mark.parametrize("starttls", [False, True])
def test_default_tls_settings_pass_testssl(small_env, starttls):
    if shutil.which("testssl") is None:
        pytest.fail("testssl is not installed (scripts/install-deps installs testssl.sh)")
    cert, key = rsa_certificate(small_env.root)
    with small_env.server({"tls": {"certificate": cert, "private_key": key}}) as srv:
        if starttls:
            found, text = run_testssl(small_env.root, f"127.0.0.1:{srv.port}", "--starttls", "pop3")
        else:
            found, text = run_testssl(small_env.root, f"127.0.0.1:{srv.tls_port}")
    severe = {k: v["finding"] for k, v in found.items() if v["severity"] in SEVERE}
    assert severe == {}, text
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert found[old]["finding"] == "not offered", (old, text)
    # Nothing but AEAD with forward secrecy: no CBC ("AVERAGE"), no 3DES, and no RSA key transport
    # (testssl's ROBOT check lists the static-RSA suites an RSA certificate would allow).
    assert found["cipherlist_AVERAGE"]["finding"] == "not offered", text
    assert found["cipherlist_3DES_IDEA"]["finding"] == "not offered", text
    assert found["ROBOT"]["finding"].endswith("no RSA key transport cipher"), text
    assert found["PFS"]["finding"] == "offered", text
    for vuln in ("heartbleed", "CCS", "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "SWEET32", "FREAK",
                 "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4"):
        assert found[vuln]["severity"] == "OK", (vuln, found[vuln], text)
