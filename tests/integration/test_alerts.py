# Unusual use of one account ([alerts]): many messages or octets retrieved, many deleted, many
# client addresses in a window. Each crossing writes one `alert:` line and bumps a counter.
import re

from conftest import poplar_bin, run


def login_from(srv, source, user):
    c = srv.connect(source=source)
    c.greeting()
    c.login(user)
    return c


def stats(env):
    r = run([poplar_bin(), "stats", "--config", env.config_path])
    assert r.returncode == 0, r.stderr
    return dict(l.split(" ") for l in r.stdout.decode().splitlines())


def test_download_deletion_and_address_alerts(small_env):
    cfg = {"alerts": {"window": "10m", "retr_messages": 3, "retr_bytes": 0, "dele_messages": 2, "addresses": 2}}
    with small_env.server(cfg) as srv:
        c = login_from(srv, "127.0.0.1", "bob")
        for n in (1, 2, 3, 4):
            assert c.cmd(f"RETR {n}").startswith(b"+OK")
            c.read_multiline_raw()
        line = srv.wait_log(r"warning: alert: user=\"bob\" rip=127\.0\.0\.1 kind=retr_messages value=3 "
                            r"threshold=3 window=600s$")
        assert len(re.findall(r"kind=retr_messages", srv.log())) == 1   # once per window
        assert c.cmd("DELE 1").startswith(b"+OK") and c.cmd("DELE 2").startswith(b"+OK")
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'alert: user="bob" rip=127\.0\.0\.1 kind=dele_messages value=2 threshold=2 window=600s$')
        # A second address within the window.
        d = login_from(srv, "127.0.0.5", "bob")
        srv.wait_log(r'alert: user="bob" rip=127\.0\.0\.5 kind=addresses value=2 threshold=2 window=600s$')
        d.close()
        # Another user is not affected by bob's numbers.
        e = login_from(srv, "127.0.0.5", "alice")
        assert e.cmd("RETR 1").startswith(b"+OK")
        e.read_multiline_raw()
        e.close()
        assert 'user="alice"' not in "".join(l for l in srv.log().splitlines() if "alert:" in l)
        s = stats(small_env)
        assert s["alerts_retr_messages_total"] == "1"
        assert s["alerts_dele_messages_total"] == "1"
        assert s["alerts_addresses_total"] == "1"
        assert s["alerts_retr_bytes_total"] == "0"
        assert line


def test_byte_alert_and_defaults_stay_quiet(small_env):
    with small_env.server({"alerts": {"retr_bytes": 200}}) as srv:
        c = login_from(srv, "127.0.0.1", "bob")
        total = 0
        n = 1
        while total < 200:
            size = int(c.cmd(f"LIST {n}").split()[2])
            assert c.cmd(f"RETR {n}").startswith(b"+OK")
            c.read_multiline_raw()
            total += size
            n += 1
        srv.wait_log(rf'alert: user="bob" rip=127\.0\.0\.1 kind=retr_bytes value={total} threshold=200 window=3600s$')
        c.close()
    # With the defaults, an ordinary session alerts on nothing.
    with small_env.server() as srv:
        c = login_from(srv, "127.0.0.1", "alice")
        for n in (1, 2, 3):
            assert c.cmd(f"RETR {n}").startswith(b"+OK")
            c.read_multiline_raw()
        assert c.cmd("QUIT") == b"+OK signing off\r\n"
        srv.wait_log(r'session end: user="alice"')
        assert "alert:" not in srv.log()


def test_bad_alert_settings_are_named(small_env):
    for alerts, message in [({"window": "10s"}, "alerts.window: must be between"),
                            ({"retr_messages": -1}, "alerts.retr_messages: must be between"),
                            ({"adresses": 3}, 'alerts.adresses: unknown key (did you mean "addresses"?)')]:
        small_env.write_config({"alerts": alerts})
        r = run([poplar_bin(), "check", "--config", small_env.config_path])
        assert r.returncode == 1
        assert message in r.stderr.decode(), (alerts, r.stderr)
