"""Puppet as job actions: puppet.apply of a project's manifest, puppet.agent, the puppet.drift check
(noop) feeding drift alerts, and host.install_puppet (Debian's puppet-agent)."""
