"""Puppet on real hosts: `puppet apply` of a manifest directory, --noop as the dry run and drift check,
syntax errors, a host without Puppet, cancel, and the idempotent install of Debian's puppet-agent."""

import os
import threading
import time
from pathlib import Path

import pytest

from schedulers.base import BackendError, CancelToken
from schedulers.hostlib import puppet
from schedulers.hostlib.puppet import PuppetMissing, apply_manifest, install_agent, manifest_path, pack_tree
from tests.schedulers.conftest import ssh_target

MODULE = """class opsportal_demo($path, $content) {
  file { $path:
    ensure  => file,
    content => $content,
    mode    => '0640',
  }
}
"""


def project(root: Path, path, content="managed by puppet\n", *, extra=""):
    """A manifest directory: modules/opsportal_demo and manifests/site.pp declaring the class for path."""
    (root / "modules/opsportal_demo/manifests").mkdir(parents=True, exist_ok=True)
    (root / "modules/opsportal_demo/manifests/init.pp").write_text(MODULE)
    (root / "manifests").mkdir(exist_ok=True)
    (root / "manifests/site.pp").write_text(
        f"class {{ 'opsportal_demo': path => '{path}', content => \"{content.encode('unicode_escape').decode()}\" }}\n"
        + extra)
    return str(root)


@pytest.fixture(scope="session")
def puppet_targets(fleet_puppet):
    key = Path(fleet_puppet.key_path).read_text()
    return [ssh_target(host, key) for host in fleet_puppet.hosts]


@pytest.fixture
def ptarget(puppet_targets):
    return puppet_targets[0]


def _apply(pool, target, tree, lines, **kwargs):
    return apply_manifest(pool, target, tree=tree, manifest="manifests/site.pp", on_line=lines, timeout=300, **kwargs)


# Without hosts -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["../site.pp", "/etc/puppet/site.pp", "manifests/../../x.pp", "site.rb", "a b.pp",
                                 "manifests/./site.pp", "-x.pp/../y.pp", ""])
def test_a_manifest_path_outside_the_project_or_not_a_manifest_is_refused(bad):
    with pytest.raises(ValueError):
        manifest_path(bad)


def test_the_manifest_directory_is_sent_without_symlinks_owners_or_git(tmp_path):
    import io
    import tarfile

    tree = Path(project(tmp_path / "p", "/tmp/x"))
    (tree / ".git").mkdir()
    (tree / ".git/config").write_text("secret")
    with tarfile.open(fileobj=io.BytesIO(pack_tree(tree))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "manifests/site.pp" in members and "modules/opsportal_demo/manifests/init.pp" in members
    assert not any(name.startswith(".git") for name in members)
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    os.symlink("/etc/shadow", tree / "manifests/shadow")
    with pytest.raises(BackendError, match="symlink"):
        pack_tree(tree)


def test_the_summary_counts_unchanged_as_the_resources_that_were_in_sync():
    text = ("---\nversion:\n  config: 1700000000\n  puppet: 7.23.0\nresources:\n  changed: 1\n  failed: 0\n"
            "  out_of_sync: 2\n  skipped: 0\n  total: 9\nevents:\n  failure: 0\n  noop: 1\n  success: 1\n")
    counts = puppet.parse_summary(text)
    assert (counts["changed"], counts["out_of_sync"], counts["unchanged"], counts["puppet_version"]) == (1, 2, 7,
                                                                                                         "7.23.0")
    with pytest.raises(BackendError):
        puppet.parse_summary("- a list\n- not a summary\n")


# Against puppet hosts ------------------------------------------------------------------------



@pytest.mark.fleet
def test_an_apply_changes_the_file_then_finds_nothing_to_do(fleet_puppet, pool, ptarget, unique, tmp_path, lines):
    path = f"/etc/{unique}.conf"
    tree = project(tmp_path, path)
    first = _apply(pool, ptarget, tree, lines)
    assert first.ok, (first.error, lines.texts())
    assert first.changed is True and first.data["puppet_exit"] == 2
    assert first.data["resources"]["changed"] == 1 and first.data["resources"]["failed"] == 0
    assert fleet_puppet.exec(ptarget.name, ["stat", "-c", "%a", path]).check().stdout.strip() == "640"
    assert fleet_puppet.exec(ptarget.name, ["cat", path]).check().stdout == "managed by puppet\n"
    assert any("content" in text and path in text for text in lines.texts()), lines.texts()

    again = _apply(pool, ptarget, tree, lines)
    assert again.ok and again.changed is False and again.data["puppet_exit"] == 0
    assert again.data["resources"]["changed"] == 0 and again.data["resources"]["out_of_sync"] == 0
    assert again.data["resources"]["unchanged"] == again.data["resources"]["total"] >= 1
    leftovers = fleet_puppet.exec(ptarget.name, "ls -d /tmp/opsportal-puppet.* 2>/dev/null; true").stdout
    assert leftovers == "", "the private directory of a run was left behind"


@pytest.mark.fleet
def test_noop_changes_nothing_and_detects_a_file_edited_on_the_host(fleet_puppet, pool, ptarget, unique, tmp_path,
                                                                     lines):
    path = f"/etc/{unique}.conf"
    tree = project(tmp_path, path)
    dry = _apply(pool, ptarget, tree, lines, noop=True)
    assert dry.ok and dry.changed is False, (dry.error, lines.texts())
    assert dry.data["noop"] is True and dry.data["resources"]["out_of_sync"] == 1
    assert fleet_puppet.exec(ptarget.name, ["test", "-e", path]).exit_code == 1, "--noop created the file"

    assert _apply(pool, ptarget, tree, lines).changed is True
    in_line = _apply(pool, ptarget, tree, lines, noop=True)
    assert in_line.ok and in_line.data["resources"]["out_of_sync"] == 0

    fleet_puppet.run(ptarget.name, f"echo 'edited by hand' > {path}").check()  # over SSH, as a person would
    drift = _apply(pool, ptarget, tree, lines, noop=True)
    assert drift.ok and drift.changed is False
    assert drift.data["resources"]["out_of_sync"] == 1 and drift.data["resources"]["changed"] == 0
    assert fleet_puppet.exec(ptarget.name, ["cat", path]).check().stdout == "edited by hand\n", "--noop rewrote it"


@pytest.mark.fleet
def test_a_syntax_error_fails_the_target_with_puppets_message(fleet_puppet, pool, ptarget, unique, tmp_path, lines):
    path = f"/etc/{unique}.conf"
    tree = project(tmp_path, path, extra="file { 'broken':\n  ensure => \n")
    result = _apply(pool, ptarget, tree, lines)
    assert not result.ok and result.exit_code == 1 and result.changed is False
    assert "Syntax error" in result.error and "site.pp" in result.error, result.error
    assert fleet_puppet.exec(ptarget.name, ["test", "-e", path]).exit_code == 1


@pytest.mark.fleet
def test_a_failing_resource_reports_failures_with_exit_4(fleet_puppet, pool, ptarget, unique, tmp_path, lines):
    path = f"/etc/{unique}.conf"
    tree = project(tmp_path, path, extra="exec { 'fails': command => '/bin/false' }\n")
    result = _apply(pool, ptarget, tree, lines)
    assert result.exit_code == 6 and not result.ok, (result, lines.texts())
    assert result.data["resources"]["failed"] == 1 and result.data["resources"]["changed"] == 1
    assert "1 resource(s) failed" in result.error and "/bin/false" in result.error


@pytest.mark.fleet
def test_a_host_without_puppet_fails_with_a_plain_reason_before_anything_is_sent(fleet, pool, target, unique,
                                                                                  tmp_path, lines):
    tree = project(tmp_path, f"/etc/{unique}.conf")
    with pytest.raises(PuppetMissing, match="puppet is not installed on .*host.install_puppet"):
        _apply(pool, target, tree, lines)
    assert fleet.exec(target.name, "ls -d /tmp/opsportal-puppet.* 2>/dev/null; true").stdout == ""
    assert lines.texts() == []


@pytest.mark.fleet
def test_cancel_ends_the_remote_puppet_and_removes_its_directory(fleet_puppet, pool, ptarget, unique, tmp_path,
                                                                 lines):
    tree = project(tmp_path, f"/etc/{unique}.conf",
                   extra=f"exec {{ 'slow': command => '/bin/sleep 120 # {unique}' }}\n")
    token = CancelToken()
    done = {}
    runner = threading.Thread(target=lambda: done.setdefault("result", _apply(pool, ptarget, tree, lines,
                                                                              cancel=token)))
    runner.start()
    deadline = time.monotonic() + 120
    while fleet_puppet.exec(ptarget.name, ["pgrep", "-f", unique]).exit_code != 0:
        assert time.monotonic() < deadline, lines.texts()
        time.sleep(0.3)
    token.cancel()
    runner.join(60)
    assert not runner.is_alive()
    assert done["result"].canceled
    assert fleet_puppet.exec(ptarget.name, ["pgrep", "-f", "puppet apply"]).exit_code == 1
    assert fleet_puppet.exec(ptarget.name, ["pgrep", "-f", unique]).exit_code == 1
    assert fleet_puppet.exec(ptarget.name, "ls -d /tmp/opsportal-puppet.* 2>/dev/null; true").stdout == ""


@pytest.mark.fleet
def test_installing_puppet_agent_where_it_is_already_installed_changes_nothing(fleet_puppet, pool, ptarget, lines):
    before = fleet_puppet.exec(ptarget.name, ["dpkg-query", "-W", "-f", "${Version}", "puppet-agent"]).check().stdout
    result = install_agent(pool, ptarget, on_line=lines)
    assert result.ok and result.changed is False
    assert any(f"installed already ({before})" in text for text in lines.texts()), lines.texts()


def test_the_argv_of_apply_and_agent_runs_carry_detailed_exit_codes_and_the_runs_own_summary():
    apply = puppet.apply_argv("/tmp/opsportal-puppet.x", "manifests/site.pp", noop=True, has_modules=True)
    assert apply[:3] == ["puppet", "apply", "--detailed-exitcodes"] and "--noop" in apply
    assert apply[apply.index("--modulepath") + 1].startswith("/tmp/opsportal-puppet.x/tree/modules:")
    assert apply[apply.index("--lastrunfile") + 1] == "/tmp/opsportal-puppet.x/last_run_summary.yaml"
    assert apply[-1] == "/tmp/opsportal-puppet.x/tree/manifests/site.pp"
    agent = puppet.agent_argv("/tmp/opsportal-puppet.x", noop=False)
    assert agent[:3] == ["puppet", "agent", "--test"] and "--no-noop" in agent and "--detailed-exitcodes" in agent


@pytest.mark.fleet
def test_an_agent_run_whose_server_does_not_answer_fails_with_puppets_words(fleet_puppet, pool, puppet_targets,
                                                                              lines):
    target = puppet_targets[-1]
    fleet_puppet.exec(target.name, "cp /etc/puppet/puppet.conf /root/puppet.conf.orig; printf "
                                   "'[agent]\\nserver = 127.0.0.1\\nmasterport = 1\\n' >> /etc/puppet/puppet.conf"
                      ).check()
    try:
        result = puppet.run_agent(pool, target, on_line=lines, timeout=180)
    finally:
        fleet_puppet.exec(target.name, "mv /root/puppet.conf.orig /etc/puppet/puppet.conf").check()
    assert not result.ok and result.exit_code == 1, (result, lines.texts())
    assert "puppet could not apply the catalog" in result.error and "127.0.0.1" in result.error, result.error
    assert fleet_puppet.exec(target.name, "ls -d /tmp/opsportal-puppet.* 2>/dev/null; true").stdout == ""
