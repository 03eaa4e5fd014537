"""schedulers.ansible with the real ansible-runner and ansible-playbook on this machine (local
connection; the fleet tests in tests/playbooks go over SSH): what it writes (0600 keys in a 0700
directory removed after, pinned host keys, connection variables the inventory cannot replace,
extra vars Ansible never templates), Ansible's own words on bad input, and cancel ending every
process of the run."""
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from schedulers import ansible
from schedulers.base import BackendError, CancelToken
from tests import keys


def run(project, playbook, hosts, groups=None, cancel=None, **fields):
    lines = []
    outcome = ansible.run_playbook(ansible.Playbook(project_dir=project, playbook=playbook, **fields), hosts,
                                   groups or {}, cancel=cancel or CancelToken(),
                                   on_line=lambda host, stream, line: lines.append((host, stream, line)))
    return outcome, lines


def test_inventory_files_are_private_pinned_and_connection_variables_are_the_portals(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    hosts = [ansible.Host(name="web-1", address="10.0.0.5", port=2222, user="deploy",
                          private_key=keys.ED25519_ENCRYPTED, passphrase=keys.ED25519_ENCRYPTED_PASSPHRASE,
                          host_key="ssh-ed25519 AAAAC3Nza",
                          variables={"ansible_host": "203.0.113.9", "ansible_ssh_common_args": "-o ProxyCommand=x",
                                     "tier": "{{ lookup('pipe', 'id') }}"}, groups=["web"]),
             ansible.Host(name="portal", local=True, variables={"ansible_connection": "ssh"})]
    path = ansible.write_inventory(directory, hosts, {"web": {"ansible_port": 1, "port": 8080}, "empty": {}})
    inventory = yaml.safe_load(path.read_text().replace("!unsafe", ""))
    web = inventory["all"]["hosts"]["web-1"]
    assert (web["ansible_host"], web["ansible_port"], web["ansible_user"]) == ("10.0.0.5", 2222, "deploy")
    ssh_args = web["ansible_ssh_common_args"]
    assert "ProxyCommand" not in ssh_args and "HostKeyAlias=web-1" in ssh_args
    assert inventory["all"]["hosts"]["portal"]["ansible_connection"] == "local"
    assert inventory["all"]["children"] == {"web": {"hosts": {"web-1": None}, "vars": {"port": 8080}}}
    assert "tier: !unsafe" in path.read_text()
    key_file = Path(web["ansible_ssh_private_key_file"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert "BEGIN OPENSSH PRIVATE KEY" in key_file.read_text() and key_file.read_text() != keys.ED25519_ENCRYPTED
    assert (directory / "known_hosts").read_text() == "web-1 ssh-ed25519 AAAAC3Nza\n"
    (tmp_path / "other").mkdir()
    with pytest.raises(BackendError, match="no pinned host key"):
        ansible.write_inventory(tmp_path / "other", [ansible.Host(name="new", address="10.0.0.6",
                                                                  private_key=keys.ED25519_PRIVATE)], {})


@pytest.mark.parametrize("playbook", ["/etc/passwd.yml", "../x.yml", "a/../../x.yml", "site.txt", "-e.yml"])
def test_playbook_paths_outside_the_project_are_refused(tmp_path, playbook):
    with pytest.raises(BackendError):
        ansible.check_playbook(tmp_path, playbook)


@pytest.mark.parametrize("limit", ["@hosts.txt", "~web.*", "a,b", "a:b", "web;id"])
def test_a_limit_is_one_plain_host_pattern(limit):
    with pytest.raises(BackendError):
        ansible.check_limit(limit)


def test_a_local_run_streams_lines_per_host_keeps_extra_vars_as_data_and_leaves_nothing(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / f"pwned-{uuid.uuid4().hex[:6]}"
    (project / "site.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - copy: {{dest: "{out}/{{{{ inventory_hostname }}}}", content: "{{{{ said }}}}"}}
""")
    said = f"{{{{ lookup('pipe', 'touch {marker}') }}}} $(touch {marker})"
    before = set(os.listdir(tempfile_dir()))
    outcome, lines = run(project, "site.yml", [ansible.Host(name="a", local=True), ansible.Host(name="b", local=True)],
                         extravars={"said": said}, forks=2)
    assert outcome.status == "successful" and outcome.error == ""
    assert {name: result.changed for name, result in outcome.hosts.items()} == {"a": 1, "b": 1}
    assert (out / "a").read_text() == said and not marker.exists()
    assert ("a", "stdout", "changed: [a]") in lines and ("b", "stdout", "changed: [b]") in lines
    assert not {n for n in set(os.listdir(tempfile_dir())) - before if n.startswith("opsportal-ansible-")}


def tempfile_dir():
    return tempfile.gettempdir()


def test_a_syntax_error_is_reported_in_ansibles_words(tmp_path):
    (tmp_path / "bad.yml").write_text("- hosts: all\n  tasks:\n    - copy: {dest: /tmp/x\n")
    outcome, _ = run(tmp_path, "bad.yml", [ansible.Host(name="a", local=True)])
    assert outcome.status == "failed" and outcome.hosts == {}
    assert "YAML" in outcome.error or "Syntax" in outcome.error, outcome.error


def test_cancel_ends_ansible_and_every_child_of_the_run(tmp_path):
    seconds = 400 + uuid.uuid4().int % 300
    (tmp_path / "sleep.yml").write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n"
                                        f"    - shell: sleep {seconds}\n")
    cancel = CancelToken()
    result = {}
    thread = threading.Thread(target=lambda: result.update(outcome=run(tmp_path, "sleep.yml", [
        ansible.Host(name="a", local=True)], cancel=cancel)[0]))
    thread.start()
    deadline = time.monotonic() + 60
    while not _sleepers(seconds) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sleepers(seconds), "the sleep task never started"
    cancel.cancel()
    thread.join(30)
    assert not thread.is_alive() and result["outcome"].status == "canceled"
    assert _sleepers(seconds) == []


def _sleepers(seconds):
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and
            p.info["cmdline"][:2] == ["sleep", str(seconds)]]


def test_check_mode_keeps_each_hosts_diff_and_changes_nothing(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b"):
        (out / f"{name}.conf").write_text("port=80\nname=old\n")
    (project / "conf.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: conf
      copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.conf"
        content: "port=9090\\nname={{{{ inventory_hostname }}}}\\n"
    - name: unchanged
      copy: {{dest: "{out}/same", content: "same\\n"}}
      check_mode: false
    - name: unchanged again
      copy: {{dest: "{out}/same", content: "same\\n"}}
    - name: dirs
      file: {{path: "{out}/{{{{ item }}}}", state: directory}}
      loop: [d1, d2]
""")
    outcome, _ = run(project, "conf.yml", [ansible.Host(name="a", local=True), ansible.Host(name="b", local=True)],
                     check=True, diff=True, forks=2)
    assert outcome.status == "successful"
    for name in ("a", "b"):
        assert (out / f"{name}.conf").read_text() == "port=80\nname=old\n"  # check mode changed nothing
        diffs = outcome.hosts[name].diffs
        by_task = {}
        for entry in diffs:
            by_task.setdefault(entry["task"], []).append(entry["diff"])
        assert "unchanged again" not in by_task  # nothing differs: no diff kept
        conf = by_task["conf"][0].splitlines()
        assert "-port=80" in conf and "+port=9090" in conf and "-name=old" in conf and f"+name={name}" in conf
        assert conf[0].startswith("--- ") and conf[1].startswith("+++ ")
        dirs = by_task["dirs"]  # a loop: one diff per item (a file's state before and after)
        assert len(dirs) == 2 and all("-state: absent" in d and "+state: directory" in d for d in dirs)
    assert not (out / "d1").exists()


def test_diff_text_of_ansibles_shapes_and_the_limit():
    assert ansible.diff_text({"before": "a\n", "after": "a\n"}) == ""
    assert ansible.diff_text({"prepared": "+ installed nginx"}) == "+ installed nginx\n"
    text = ansible.diff_text({"before": "x", "after": "y", "before_header": "/etc/x (content)"})
    assert text.splitlines() == ["--- /etc/x (content)", "+++ after", "@@ -1 +1 @@", "-x",
                                 "\\ No newline at end of file", "+y", "\\ No newline at end of file"]
    assert ansible.event_diffs({"res": {"diff": [{"before": "", "after": "new\n"}, {"prepared": "p"}]}}) == [
        "--- before\n+++ after\n@@ -0,0 +1 @@\n+new\n", "p\n"]
    result = ansible.HostResult()
    ansible._keep_diffs(result, "big", ["x" * (ansible.DIFF_LIMIT - 10), "y" * 50, "z"])
    assert [len(d["diff"]) for d in result.diffs] == [ansible.DIFF_LIMIT - 10, 10] and result.diffs_truncated


def test_the_run_tag_reaches_every_process_and_end_tagged_ends_only_the_jobs_own(tmp_path):
    """A run's tag is in ansible-playbook's environment and its children's; end_tagged ends the
    processes tagged for one job (TERM, then KILL for one that ignores TERM), leaves another job's,
    and removes the run's private directory."""
    import subprocess

    project = tmp_path / "project"
    project.mkdir()
    (project / "env.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: printf '%s' \"$OPSPORTAL_RUN\"\n"
        "      register: seen\n    - debug: {msg: 'seen={{ seen.stdout }}'}\n")
    outcome, lines = run(project, "env.yml", [ansible.Host(name="portal", local=True)], run_tag="41.00ff00ff")
    assert outcome.status == "successful", lines
    assert any("seen=41.00ff00ff" in text for _, _, text in lines)  # a task's shell inherited it
    with pytest.raises(BackendError, match="is not a run tag"):
        run(project, "env.yml", [ansible.Host(name="portal", local=True)], run_tag="41; rm -rf /")

    job = 900000 + os.getpid() % 1000
    home = Path(tempfile.mkdtemp(prefix="opsportal-ansible-"))
    (home / "key").write_text("private")
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "OPSPORTAL_RUN": f"{job}.0123abcd"}
    mine = [subprocess.Popen(["sleep", "120"], env=env, start_new_session=True),
            subprocess.Popen(["python3", "-c", stubborn], env=env, start_new_session=True)]
    other = subprocess.Popen(["sleep", "120"], env={**env, "OPSPORTAL_RUN": f"{job + 1}.0123abcd"},
                             start_new_session=True)
    try:
        time.sleep(0.3)
        assert sorted(p.pid for p in ansible.tagged(job)) == sorted(p.pid for p in mine)
        ended, left = ansible.end_tagged(job, grace=1)
        assert sorted(pid for pid, _ in ended) == sorted(p.pid for p in mine) and left == []
        for proc in mine:
            assert proc.wait(5) is not None
        assert other.poll() is None  # another job's run is left alone
        assert not home.exists()
        assert ansible.end_tagged(job) == ([], [])
    finally:
        for proc in [*mine, other]:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
