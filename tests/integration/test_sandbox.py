# The network process's sandbox (issue 11; docs/security.md "Processes"): Landlock limits it to
# the mail root (read-write) and the TLS files' directories (read), whatever its user may read.
# The server here runs as root (conftest's allow_root), so only Landlock stands between it and
# the passwd-file and /etc/shadow: a reload that points the certificate at them is refused with
# Permission denied, while mail still flows and a renewed certificate still loads.
import os
import re
import shutil
import ssl

import pytest

from conftest import USERS
from test_admin import admin, new_certificate, peer_cert_over_implicit_tls


def sandboxed_env(small_env):
    """The TLS files in a directory of their own: the passwd-file must be in no allowed one."""
    tls = os.path.join(small_env.root, "tls")
    os.mkdir(tls)
    cert = os.path.join(tls, "cert.pem")
    key = os.path.join(tls, "key.pem")
    shutil.copyfile(small_env.cert, cert)
    shutil.copyfile(small_env.key, key)
    os.chmod(key, 0o600)
    return {"tls": {"certificate": cert, "private_key": key}}, tls


def landlock_or_skip(srv):
    m = srv.wait_log(r"(info: sandbox: Landlock ABI \d+|warning: sandbox: files not limited: .*)")
    if "files not limited" in m.group(0):
        pytest.skip(f"no Landlock on this kernel: {m.group(0)}")


def test_the_network_process_opens_only_the_mail_and_the_tls_directory(small_env):
    overrides, tls = sandboxed_env(small_env)
    with small_env.server(overrides) as srv:
        landlock_or_skip(srv)
        mail = os.path.join(small_env.root, "mail")
        srv.wait_log(rf"info: sandbox: Landlock ABI \d+, no_new_privs: the network process may open only files "
                     rf"beneath {re.escape(mail)} \(read-write\) and in {re.escape(tls)} \(read\)")
        status = open(f"/proc/{srv.proc.pid}/status").read()
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        if "no system call filter: not in sanitizer builds" not in srv.log():
            srv.wait_log(r"info: sandbox: seccomp: the network process may make \d+ kinds of system call, the "
                         r"others fail with EPERM")
            assert re.search(r"^Seccomp:\s+2$", status, re.M), status  # 2: filter mode
            # Every thread (event loops, workers) has it: they start after it.
            for tid in os.listdir(f"/proc/{srv.proc.pid}/task"):
                task = open(f"/proc/{srv.proc.pid}/task/{tid}/status").read()
                assert re.search(r"^Seccomp:\s+2$", task, re.M), (tid, task)
        assert "sandbox: the passwd-file" not in srv.log()  # in neither directory: no warning

        # Mail flows: a first login makes a Maildir (mkdir, index), RETR reads, DELE+QUIT removes.
        with srv.connect() as c:
            c.greeting()
            c.login("carol")
            assert c.cmd("STAT") == b"+OK 0 0\r\n"
            c.cmd("QUIT")
        assert os.path.isdir(os.path.join(mail, "carol", "cur"))
        with srv.connect() as c:
            c.greeting()
            c.login("bob")
            assert c.cmd("STAT").startswith(b"+OK 4 ")
            first, raw = c.cmd_multi("RETR 1")
            assert first.startswith(b"+OK") and raw.endswith(b".\r\n")
            assert c.cmd("DELE 1") == b"+OK message 1 deleted\r\n"
            assert c.cmd("QUIT").startswith(b"+OK")
        assert len(small_env.files("bob")) == 3

        # Root may read the passwd-file and /etc/shadow; the sandboxed process may not.
        for target in (small_env.passwd, "/etc/shadow"):
            assert os.access(target, os.R_OK)
            cfg = small_env.write_config({"tls": {"certificate": target, "private_key": overrides["tls"]["private_key"]}})
            assert cfg == small_env.config_path
            rc, out, err = admin(small_env, "reload")
            assert rc == 1, (target, out, err)
            assert "Permission denied" in err, err
            srv.wait_log(rf"error: reload refused, the running configuration stays: tls\.certificate: .*"
                         rf"{re.escape(target)}.*Permission denied")

        # A renewal in the TLS directory (certbot's way: new files, then reload) still loads.
        cert, key = new_certificate(tls, "renewed")
        os.replace(cert, overrides["tls"]["certificate"])
        os.replace(key, overrides["tls"]["private_key"])
        small_env.write_config(overrides)
        rc, out, err = admin(small_env, "reload")
        assert rc == 0, err
        sock, fp = peer_cert_over_implicit_tls(srv, overrides["tls"]["certificate"])
        sock.close()
        with srv.connect() as c:
            c.greeting()
            c.login("demo")


def test_a_passwd_file_beside_the_tls_files_is_warned_about(small_env):
    # conftest's layout: certificate, key and passwd-file in one directory.
    with small_env.server() as srv:
        landlock_or_skip(srv)
        srv.wait_log(rf"warning: sandbox: the passwd-file {re.escape(small_env.passwd)} is beneath "
                     rf"{re.escape(small_env.root)}, which the network process may read; move the passwd-file "
                     r"\(or the TLS files\) to a directory of its own")


def test_sandbox_off_says_so(small_env):
    with small_env.server({"server": {"sandbox": False}}) as srv:
        srv.wait_log(r"warning: sandbox: off \(server\.sandbox = false\): the network process may open whatever "
                     r"its user may")
        status = open(f"/proc/{srv.proc.pid}/status").read()
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
        with srv.connect() as c:
            c.greeting()
            c.login("demo")
