# The password policy: `poplar pw` refuses weak passwords (libpwquality with pwquality.conf's
# settings) unless --allow-weak, and `poplar check` names the passwd-file entries whose stored
# hashes are cheap to crack. Exact messages and exit codes.
import os
import subprocess

from conftest import poplar_bin

STRONG = "correct horse battery staple 7!"


def pw(password, *args):
    return subprocess.run([poplar_bin(), "pw", "--password-stdin", *args], input=(password + "\n").encode(),
                          capture_output=True, timeout=60)


def refused(r, why):
    assert r.returncode == 1, r
    assert r.stdout == b""
    assert r.stderr.decode() == f"poplar pw: weak password: {why}; use --allow-weak to store it anyway\n"


def test_weak_passwords_are_refused():
    refused(pw("Sh0rt!"), "The password is shorter than 8 characters")
    refused(pw("password1"), "The password fails the dictionary check - it is based on a dictionary word")
    refused(pw("alice-2024-xq", "--user", "alice@example.com"), "The password contains the user name in some form")
    # Without --user nothing is known about the name.
    assert pw("alice-2024-xq").returncode == 0


def test_a_strong_password_is_hashed_and_verifies(small_env):
    r = pw(STRONG, "--user", "demo")
    assert r.returncode == 0 and r.stderr == b"", r
    line = r.stdout.decode().strip()
    assert line.startswith("{SHA512-CRYPT}$6$")
    small_env.write_passwd({"demo": line})
    with small_env.server() as srv, srv.connect() as c:
        c.greeting()
        c.login("demo", STRONG)


def test_allow_weak_stores_it_with_a_warning():
    r = pw("Sh0rt!", "--allow-weak")
    assert r.returncode == 0
    assert r.stdout.decode().startswith("{SHA512-CRYPT}$6$")
    assert r.stderr.decode() == ("poplar pw: warning: weak password stored anyway (--allow-weak): "
                                 "The password is shorter than 8 characters\n")


def test_a_named_pwquality_config_applies(tmp_path):
    conf = tmp_path / "pwquality.conf"
    conf.write_text("minlen = 40\n")
    refused(pw(STRONG, "--pwquality-config", str(conf)), "The password is shorter than 40 characters")
    conf.write_text("minlen = 8\nenforcing = 0\n")
    r = pw("Sh0rt!", "--pwquality-config", str(conf))
    assert r.returncode == 0
    assert r.stderr.decode() == ("poplar pw: warning: weak password stored anyway (enforcing = 0 in pwquality.conf): "
                                 "The password is shorter than 8 characters\n")


def test_a_bad_pwquality_config_is_an_error(tmp_path):
    missing = tmp_path / "nope.conf"
    r = pw(STRONG, "--pwquality-config", str(missing))
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode() == f"poplar pw: password policy: {missing}: cannot read: No such file or directory\n"
    bad = tmp_path / "bad.conf"
    bad.write_text("minlen = lots\n")
    r = pw(STRONG, "--pwquality-config", str(bad))
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().startswith(f"poplar pw: password policy: {bad}: "), r.stderr
    bad.write_text("no_such_setting = 1\n")
    r = pw(STRONG, "--pwquality-config", str(bad))
    assert r.returncode == 1 and r.stderr.decode().startswith(f"poplar pw: password policy: {bad}: "), r.stderr


def test_check_names_weak_stored_hashes(small_env):
    entries = {
        "md5": "{CRYPT}$1$ab$Wc5HnzmyyULfkeWnKpNQp/",
        "lowrounds": "{SHA512-CRYPT}$6$rounds=1000$saltsalt$w9KQdgZ0Ki6LoC1UHsgXGBQaO4XJhW7upynW4LSaoTX6YuFX0KIqzhQ"
                     "cvdJFwTJS.I2sYmby8LApILDV7m1xF/",
        "good": pw(STRONG).stdout.decode().strip(),
        "des": "abJnggxhB/yWI",
        "bcrypt": "{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuuJ9bA1fZkYbZ.fhhkqkGjdxTAsmJ.Yza",
    }
    small_env.write_passwd(entries)
    cfg = small_env.write_config()
    r = subprocess.run([poplar_bin(), "check", "--config", cfg], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    want = (f"poplar: warning: auth.passwd_file: {small_env.passwd}: 4 users have a weak password hash, cheap to "
            "crack if the file leaks: 'md5' (line 1, MD5-CRYPT), 'lowrounds' (line 2, SHA512-CRYPT with 1000 rounds "
            "(under 5000)), 'des' (line 4, DES crypt) and 1 more; set a new password with poplar pw (SHA512-CRYPT, "
            "BLF-CRYPT or ARGON2ID)\n")
    assert want in r.stderr, r.stderr
